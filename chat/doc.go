// Package chat is natter's core: a line-based chat [Server]. natter's own
// client is package chat/client.
//
// The protocol is plain text, so `nc` is a full client. Every line a client
// sends ends with "\n" (a "\r" before it is dropped); every non-empty line is
// delivered to every connected client, the sender included, in one order
// that all receivers share. Lines from the server that start with
// [NoticePrefix] are the server's own notices and errors, not chat.
//
// The server is built to keep going whatever its clients do:
//
//   - Reading is bounded. A line longer than [Options.MaxLineBytes], or that
//     is not UTF-8, or that holds a NUL byte, is discarded whole and the
//     sender gets an error line; its connection stays up.
//   - Each message is encoded once and shared by every receiver. Each
//     connection has a bounded outbound queue, drained by a flusher
//     goroutine that writes everything queued in one Write and runs only
//     while there is something to write, so an idle connection costs one
//     goroutine (its reader) and a small buffer.
//   - The broadcaster never blocks on a receiver. When a receiver's queue is
//     full, its oldest queued messages are dropped and it is told how many
//     it missed; a receiver that takes no bytes for [Options.WriteTimeout]
//     is disconnected.
//
// The server depends only on [net.Listener], and package chat/client only
// on a Dialer, so both run unchanged over real TCP and over the in-memory
// netfake network.
package chat
