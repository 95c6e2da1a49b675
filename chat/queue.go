package chat

// item is one queued message: its encoding, shared with other receivers,
// and, for a numbered room message, its room and number, so that a client
// who loses it can be told exactly what to fetch from history.
type item struct {
	b    []byte
	room string
	seq  uint64
}

// minQueue is the smallest array a queue holds once it has held any.
const minQueue = 8

// queue is a bounded FIFO of messages for one receiver. When full, pushing
// drops the oldest message. It grows on demand up to its limit, so an idle
// connection holds no large array. It is not safe for concurrent use.
type queue struct {
	buf   []item
	head  int
	n     int
	limit int
}

// push appends m and returns the oldest message if it was dropped to make
// room.
func (q *queue) push(m item) (dropped item, ok bool) {
	if q.n == len(q.buf) {
		if len(q.buf) >= q.limit {
			dropped = q.buf[q.head]
			q.buf[q.head] = m
			q.head = (q.head + 1) % len(q.buf)
			return dropped, true
		}
		q.grow()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = m
	q.n++
	return item{}, false
}

func (q *queue) grow() {
	size := min(max(2*len(q.buf), minQueue), q.limit)
	buf := make([]item, size)
	q.appendTo(buf[:0])
	q.buf, q.head = buf, 0
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
		m := &q.buf[q.head]
		if taken > 0 && len(b)+len(m.b) > max {
			break
		}
		b = append(b, m.b...)
		*m = item{} // let the message be collected once written
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
	if q.n == 0 {
		q.head = 0
	}
	return b
}

// release lets go of an empty queue's array if a burst grew it, so that an
// idle client holds only a small one.
func (q *queue) release() {
	if q.n == 0 && len(q.buf) > minQueue {
		q.buf = nil
	}
}
