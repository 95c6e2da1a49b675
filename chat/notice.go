package chat

import "fmt"

// NoticePrefix starts every line the server itself sends, as opposed to chat
// lines relayed from clients.
const NoticePrefix = "*** "

// Notices and errors sent by the server. Each is a complete line.
var (
	noticeShutdown   = []byte(NoticePrefix + "notice: server shutting down\n")
	errorInvalidUTF8 = []byte(NoticePrefix + "error: line is not valid UTF-8; it was discarded\n")
	errorNUL         = []byte(NoticePrefix + "error: line contains a NUL byte; it was discarded\n")
)

func errorTooLong(limit int) []byte {
	return fmt.Appendf(nil, "%serror: line longer than %d bytes; it was discarded\n", NoticePrefix, limit)
}

// appendMissed appends the notice telling a slow client how many messages it
// lost.
func appendMissed(b []byte, n int) []byte {
	return fmt.Appendf(b, "%snotice: you missed %d messages because your connection could not keep up\n", NoticePrefix, n)
}
