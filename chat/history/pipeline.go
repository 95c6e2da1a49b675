package history

// A Pipeliner is a Store whose appends can overlap their syncs: Write
// numbers a batch and writes it, returning at once with a Ticket, and Commit
// waits until the batch is durable. While one batch syncs the next is
// written, and one sync makes durable every batch written before it began,
// so under load the disk syncs back to back and each sync carries whatever
// queued up meanwhile.
//
// Messages written are invisible to Before, After and Bounds until they are
// committed: no reader can see a message that a crash could lose.
//
// One goroutine writes and one commits (they may be the same); Commit is
// called for tickets in the order Write gave them. If a Commit fails, every
// batch written and not yet committed is undone, its numbers given out
// again by the next Write, and Commit of each of those tickets returns the
// error: as with a failed Append, nothing of them is kept.
type Pipeliner interface {
	Store
	// Write numbers msgs, setting each message's Seq, and writes them; it
	// does not wait for them to be durable. A failed Write keeps nothing and
	// uses up no numbers.
	Write(msgs []Message) (Ticket, error)
	// Commit returns when everything written up to and including t is
	// durable, or with the error that undid it.
	Commit(t Ticket) error
}

// A Ticket names a batch given to Pipeliner.Write. Tickets grow with every
// Write.
type Ticket uint64

// Pipeline returns s as a Pipeliner: s itself if it is one, or else one
// whose Write appends (so it is durable when Write returns) and whose Commit
// has nothing left to wait for.
func Pipeline(s Store) Pipeliner {
	if p, ok := s.(Pipeliner); ok {
		return p
	}
	return appendOnWrite{s}
}

// appendOnWrite is a Store as a Pipeliner that doesn't overlap anything.
type appendOnWrite struct{ Store }

func (a appendOnWrite) Write(msgs []Message) (Ticket, error) { return 0, a.Append(msgs) }
func (appendOnWrite) Commit(Ticket) error                    { return nil }
