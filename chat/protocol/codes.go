package protocol

// Error codes: the Code of an error event, which says why a command or line
// was refused. chat/PROTOCOL.md lists them with example texts. Three of them
// also come as the Code of a notice, as said below.
const (
	CodeUnknownCommand = "unknown_command"       // no such command
	CodeUsage          = "usage"                 // wrong or missing arguments
	CodeBadJSON        = "bad_json"              // a JSON command that doesn't parse, or has no "type"
	CodeBadNick        = "bad_nick"              // a nickname that breaks the rules
	CodeNickTaken      = "nick_taken"            // someone has that nickname
	CodeNoSuchNick     = "no_such_nick"          // a private message to nobody
	CodeBadRoom        = "bad_room"              // a room name that breaks the rules
	CodeNoSuchRoom     = "no_such_room"          // who or topic of a room that doesn't exist
	CodeNotInRoom      = "not_in_room"           // part, or a JSON say, to a room the client is not in
	CodeNoRoom         = "no_current_room"       // chat while in no room; also a notice when the client left its last room
	CodeTopicTooLong   = "topic_too_long"        // a topic over the server's limit
	CodeTooManyJoined  = "too_many_rooms_joined" // a join past the rooms one client may be in
	CodeRoomFull       = "room_full"             // a join to a room at its member limit
	CodeTooManyRooms   = "too_many_rooms"        // creating a room past the server's limit of rooms
	CodeLineTooLong    = "line_too_long"         // a line over the server's limit; it was discarded
	CodeInvalidUTF8    = "invalid_utf8"          // a line that isn't UTF-8; it was discarded
	CodeNULByte        = "nul_byte"              // a line with a NUL byte; it was discarded
	CodeControl        = "control_character"     // a line with another control character but tab; it was discarded
	CodeRateLimited    = "rate_limited"          // a line sent too fast, over the rate limit
	CodeFlooding       = "flooding"              // too many lines refused in a row; the connection is then closed
	CodeLineTimeout    = "line_timeout"          // a line not finished in time; the connection is then closed
	CodeRefused        = "connection_refused"    // the only line a refused connection gets, before it is closed (on a cluster node, also when the cluster can't confirm a guest name)
	CodeNickRegistered = "nick_registered"       // a nick change to a name registered to another account
	CodeAccount        = "account_error"         // a registration or login refused: name taken, bad password length, account in use
	CodeBadLogin       = "bad_login"             // a wrong password, or no such account
	CodeThrottled      = "login_throttled"       // too many login attempts for the account or from the address
	CodeLoginRequired  = "login_required"        // a command before logging in, or no login in time; also a notice on connecting, when the server requires a login
	CodeClusterDown    = "cluster_unavailable"   // in a cluster, what needs the other nodes while NATS can't be reached; also a notice to every client when the cluster is lost
	CodeStoreError     = "store_error"           // the history store failed: a message not stored and not sent (or, if the text says it was not confirmed, perhaps sent), or history not read
	CodeFilesOff       = "files_off"             // an upload to a server that shares no files
	CodeUploadDenied   = "upload_not_allowed"    // an upload by someone the server lets upload nothing (not registered, where only registered users may)
	CodeFileTooLarge   = "file_too_large"        // an upload over the server's size limit, or its disk budget
	CodeFileQuota      = "file_quota"            // an upload past the sender's quota; the text says when it frees
	CodeBadFile        = "bad_file"              // an upload's name, size or hash that breaks the rules
)

// Notice codes: the Code of a notice event, which is news from the server
// rather than a refusal. CodeNoRoom, CodeLoginRequired and CodeClusterDown,
// above, come as notices too.
const (
	CodeShutdown          = "shutdown"           // the server is going away; the connection closes after it
	CodeBye               = "bye"                // the answer to quit; the connection closes after it
	CodeSameNick          = "same_nick"          // a nick change to the name the client has
	CodeNickLost          = "nick_lost"          // in a cluster, the client's nickname was given to another node's client (this node had stalled past the presence TTL): it is renamed to a guest
	CodeRegistered        = "registered"         // an account was registered, and the client is logged in to it
	CodeLoggedIn          = "logged_in"          // the client logged in to an account
	CodePlaintextPassword = "plaintext_password" // the client sent a password without TLS
	CodeClusterBack       = "cluster_back"       // in a cluster, NATS is reachable again after CodeClusterDown
)
