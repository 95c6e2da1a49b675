package chat

import "sync"

// item is one queued message: its encoding, shared with other receivers,
// and, for a numbered room message, its room and number, so that a client
// who loses it can be told exactly what to fetch from history.
type item struct {
	b    []byte
	room string
	seq  uint64
}

// minQueue is the smallest array a queue holds while it holds any.
const minQueue = 8

// smallQueues holds the minQueue-item arrays of queues that have emptied,
// so that an idle receiver holds none and one that receives now and then
// borrows one for a moment instead of allocating it.
var smallQueues = sync.Pool{New: func() any { return new([minQueue]item) }}

// queue is a bounded FIFO of messages for one receiver, bounded both in
// messages (limit) and in bytes (maxBytes). Pushing beyond either drops
// the oldest messages, but never the one pushed. It grows on demand up to
// its limit, and lets go of its array once emptied (release), so an idle
// connection holds none. It is not safe for concurrent use.
type queue struct {
	buf      []item
	head     int
	n        int
	bytes    int // of the n messages queued
	limit    int
	maxBytes int
}

// push appends m, dropping the oldest messages, each added to lost, while
// the queue would hold more than limit messages, or more than maxBytes
// bytes and another message than m. It returns how many it dropped.
func (q *queue) push(m item, lost *missed) (dropped int) {
	switch {
	case q.n < len(q.buf):
		q.buf[q.wrap(q.head+q.n)] = m
		q.n++
	case len(q.buf) < q.limit:
		q.grow()
		q.buf[q.n] = m
		q.n++
	default:
		// Full: m takes the oldest's place, as the broadcast to a client
		// that has stopped reading does every time, so this costs no more
		// than a message kept.
		old := &q.buf[q.head]
		lost.add(*old)
		q.bytes -= len(old.b)
		*old = m
		q.head = q.wrap(q.head + 1)
		dropped++
	}
	q.bytes += len(m.b)
	for q.bytes > q.maxBytes && q.n > 1 {
		lost.add(q.pop())
		dropped++
	}
	return dropped
}

// wrap returns i, which is less than twice the array's length, as an
// index into it: cheaper than i % len(q.buf), a division.
func (q *queue) wrap(i int) int {
	if i >= len(q.buf) {
		i -= len(q.buf)
	}
	return i
}

// pop removes the oldest message, of which there must be one, and returns
// it.
func (q *queue) pop() item {
	m := q.buf[q.head]
	q.buf[q.head] = item{} // let the message be collected once written
	q.head = q.wrap(q.head + 1)
	q.n--
	q.bytes -= len(m.b)
	return m
}

// grow moves the queued messages to an array twice as large (at least
// minQueue, at most limit), a shared one if it is minQueue.
func (q *queue) grow() {
	var buf []item
	switch size := min(max(2*len(q.buf), minQueue), q.limit); size {
	case minQueue:
		buf = smallQueues.Get().(*[minQueue]item)[:]
	default:
		buf = make([]item, size)
	}
	q.appendTo(buf[:0])
	q.putArray()
	q.buf, q.head = buf, 0
}

// putArray lets go of the array, giving it back to smallQueues, cleared so
// that it keeps no message alive, if it came from there: every array of
// minQueue items does, since grow makes no other of that size.
func (q *queue) putArray() {
	if len(q.buf) == minQueue {
		clear(q.buf)
		smallQueues.Put((*[minQueue]item)(q.buf))
	}
	q.buf = nil
}

// appendTo appends the queued messages, oldest first, to dst.
func (q *queue) appendTo(dst []item) []item {
	for i := range q.n {
		dst = append(dst, q.buf[(q.head+i)%len(q.buf)])
	}
	return dst
}

// takeTo appends the bytes of the oldest queued messages to b and removes
// them from q: as many whole messages as fit in b up to max bytes, and at
// least one (however long) if any is queued.
func (q *queue) takeTo(b []byte, max int) []byte {
	for taken := 0; q.n > 0; taken++ {
		if taken > 0 && len(b)+len(q.buf[q.head].b) > max {
			break
		}
		b = append(b, q.pop().b...)
	}
	return b
}

// release lets go of an empty queue's array, so that an idle client holds
// none.
func (q *queue) release() {
	if q.n == 0 {
		q.putArray()
	}
}
