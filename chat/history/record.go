package history

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
)

// A log record is a frame around one message, encoded as JSON (the form the
// bolt store kept, so migrating copies the bytes as they are):
//
//	length  uint32, big-endian: the payload's length, at least 1
//	crc     uint32, big-endian: CRC-32C (Castagnoli) of the payload
//	payload length bytes
//
// A record cut short by a crash, or one whose checksum doesn't match, ends
// the log: see LogStore.
const (
	recordHeader = 8
	// maxRecord bounds a payload: far above any message the server
	// accepts (a line is at most 64 KiB), and below what a uint32 offset
	// into a segment could hold.
	maxRecord = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn is the error for a record that is incomplete or fails its
// checksum: the end of what was written, at a crash.
var errTorn = errors.New("torn or damaged record")

// appendRecord appends m's record to buf.
func appendRecord(buf []byte, m *Message) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeader)...)
	payload, err := json.Marshal(m)
	if err != nil {
		return buf[:start], err
	}
	return frame(buf, start, payload)
}

// appendRawRecord appends a record of payload, an encoded message, to buf.
func appendRawRecord(buf, payload []byte) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeader)...)
	return frame(buf, start, payload)
}

func frame(buf []byte, start int, payload []byte) ([]byte, error) {
	if len(payload) == 0 || len(payload) > maxRecord {
		return buf[:start], fmt.Errorf("a message of %d bytes can't be stored", len(payload))
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return append(buf, payload...), nil
}

// readRecord returns the payload of the record at the start of b, and the
// record's whole length. It returns errTorn if b holds no complete record
// whose checksum matches.
func readRecord(b []byte) (payload []byte, size int, err error) {
	if len(b) < recordHeader {
		return nil, 0, errTorn
	}
	n := binary.BigEndian.Uint32(b)
	if n == 0 || n > maxRecord || uint64(len(b)-recordHeader) < uint64(n) {
		return nil, 0, errTorn
	}
	payload = b[recordHeader : recordHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, errTorn
	}
	return payload, recordHeader + int(n), nil
}
