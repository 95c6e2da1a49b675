// Package link puts faults between two ends of a TCP conversation: a [Link]
// is a proxy that accepts connections on a listener, dials the far side for
// each, and forwards bytes both ways through delay lines that a test can
// slow down, stall, cut and heal. Specs use it between a chat node and its
// NATS server. It works the same over a real listener and one of
// [github.com/natter-chat/natter/netfake].
//
// The contract:
//
//   - Each direction of each connection is a delay line. Bytes read from one
//     side at time t are written to the other at t+d, where d is the delay set
//     by [Link.SetDelay] when they were read, and never out of order.
//   - A direction holds at most 1 MiB it has read but not yet written. When
//     that is full the link stops reading, so the sender's writes block as on
//     a slow TCP path; bytes are never dropped.
//   - [Link.Stall] stops forwarding; connections stay open, new ones are
//     accepted and dialed, and bytes are held (within the bound above) until
//     [Link.Resume] delivers them, in order.
//   - [Link.Cut] closes every connection at once, dropping held bytes, and
//     while cut every new connection is closed as soon as it is accepted, as
//     in a partition. [Link.Heal] ends that.
//   - When one side closes or fails, the link writes what it already read
//     from that side to the other side, then closes the other side too.
//     Half-closes are not propagated: an EOF closes the whole connection.
//   - [Link.Close] closes the listener and every connection, and returns once
//     every goroutine the link started has ended.
//
// Every method is safe for concurrent use.
package link
