// Package files is the file-sharing service of the chat server: upload
// slots, the HTTP side channel that carries the bytes, and the store.
//
// The chat server handles "/upload NAME SIZE [SHA256]": it calls
// [Service.Offer], which checks the name, size, disk budget and quota before
// any byte moves, and answers with a one-time [Slot]. The client PUTs the
// bytes to the slot's URL; when they are complete (and match the offered
// hash), the service stores them and hands the [Upload] to the server's post
// function, which announces the file's download URL in the room or to the
// recipient. Files are served with [net/http.ServeContent] under a random
// download token, never under the bare hash.
//
// # Upload: PUT and HEAD /u/{token}
//
// The body is streamed to a temporary file in Dir/tmp while it is hashed,
// bounded by the slot's size. A PUT may carry "Content-Range: bytes
// START-END/TOTAL" to continue a partial upload (START must be the offset
// received so far, TOTAL the slot's size); a PUT without it starts again from
// byte 0. "HEAD /u/{token}" answers the offset received so far in
// Upload-Offset and the slot's size in Upload-Length. Statuses:
//
//   - 201 Created: the upload is complete; the body is the download URL,
//     also in Location.
//   - 204 No Content: a Content-Range chunk that ends before the file's end
//     was stored; Upload-Offset says where the next one starts.
//   - 400 Bad Request: the body ended before the bytes expected ("short"),
//     or the request was cut off; the bytes received are kept for a resume.
//     Also a malformed Content-Range.
//   - 404 Not Found: a slot token that was never issued, or one that ended
//     an UploadTTL or more ago and was forgotten by a sweep.
//   - 408 Request Timeout: no byte arrived for StallTimeout; the bytes
//     received are kept for a resume.
//   - 409 Conflict: another PUT to the slot is in progress, or the post
//     function refused the upload (its error is the body).
//   - 410 Gone: the slot was used, failed or expired.
//   - 413 Content Too Large: more bytes than offered; the slot fails.
//   - 416 Range Not Satisfiable: a Content-Range that doesn't continue at the
//     offset received, or whose TOTAL is not the slot's size.
//   - 422 Unprocessable Content: the bytes' SHA-256 is not the one offered;
//     the slot fails.
//   - 429 Too Many Requests: MaxUploadsPerIP PUTs from the address are in
//     progress (Retry-After is set).
//   - 503 Service Unavailable: the service is closed.
//   - 507 Insufficient Storage: the server could not write the file; the
//     slot fails.
//
// A slot that fails or expires removes its temporary file and refunds its
// quota charge. A slot's life is UploadTTL from the offer: the upload must be
// complete within it; a PUT in progress at the expiry is cut off then.
// Slots and quota charges live in memory only: a restart forgets them, and
// New empties Dir/tmp.
//
// # Download: GET and HEAD /f/{token}
//
// Range requests, If-None-Match and If-Range work as ServeContent does them.
// The response has ETag "<sha256>", the sniffed Content-Type,
// "Content-Disposition: attachment", "X-Content-Type-Options: nosniff", a
// sandboxing Content-Security-Policy and "Cache-Control: private,
// max-age=N", N being the seconds left until the file expires, at most a
// day. The download URL is the only credential: whoever has it may fetch the
// file, private or not. An unknown token answers 404; one that expired (Retain) or was evicted
// (MaxBytes) answers 410 for 90 days after its removal, then 404.
//
// Any other path answers 404, and a wrong method on a known path 405.
//
// # Store
//
// Blobs are files named by their SHA-256 under Dir/blobs/<2 hex>/<hex>:
// identical uploads are stored once. The metadata (download token → hash,
// name, size, MIME type, creation time, private flag; reference counts of
// blobs) is in the bbolt file Dir/files.db. Retention and eviction remove
// download tokens, one upload at a time, oldest first; a blob is removed when
// no token refers to it any more, so removing one sharer's file never breaks
// another's link. MaxBytes counts each stored blob once.
package files
