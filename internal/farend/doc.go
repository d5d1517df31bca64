// Package farend is the far-end publish path: when both ends of a tunnel
// are backupsyncd, the destination's daemon (the SSH = server side, which
// sits next to its archive FTP) performs the FTP work of a publish itself,
// and the client sends it requests over SSH channels of the tunnel's SSH
// connection. A small file then costs one round trip of the link (its
// bytes out, its result back) instead of about seven (EPSV, the data
// channel's open, STOR, the data and 226, SIZE, RNFR, RNTO), and the
// requests of one channel are pipelined: a request goes out without
// waiting for the results of those before it.
//
// # Wire format
//
// A far-end channel is an SSH channel of type ChannelType, offered by the
// server in its hello (tunnel.FeatureFarEnd). Both directions carry frames:
//
//	type (1 byte) | request id (4 bytes) | payload length (4 bytes) | payload
//
// big-endian. A payload is at most MaxData (256 KiB) for data, chunk and
// listing frames and 8 KiB for every other type; a frame of an unknown type
// or over its limit closes the channel before its payload is read. Message
// payloads use SSH's wire encoding (strings as length and bytes, integers
// big-endian, booleans one byte) with no trailing bytes:
//
//	client → far end
//	  1 login    id 0: version, user, password, volume root — the first frame, once
//	  2 list     database, node                 → entries…, result
//	  3 publish  path, size, from, md5, stripes, token, then
//	  4 data     bytes (size - from in all)       or 9 chunk frames (below)
//	  5 end      ok, CRC-32C of the bytes sent  → result
//	  6 delete   path                           → result
//	  7 rmdir    path                           → result
//	  8 read     path, offset, length ≤ 8 MiB   → data…, result
//	  9 chunk    id 0: token (16 bytes), sequence number (8), bytes
//	far end → client
//	 10 result   kind, FTP reply code, message (the login's: the archive
//	             volume's capabilities and the far end's limits)
//	 11 entries  listing entries back to back: path, size, mtime, exact
//	  4 data     the bytes of a read
//
// A channel carries one request's bytes at a time: between a publish and
// its end only its data (or chunk) frames may come; any number of
// requests (at most MaxInFlight, 32) may wait for their results, which come
// in any order, matched by id. A client sends many requests on a channel
// while it holds it only for their bytes, and opens up to Options.Channels
// channels (PARALLEL): one per worker at most, each a login at the far end.
//
// A publish of at least StripeMin bytes (8 MiB) is striped: its header on
// one channel names a random token and the number of channels, and its
// bytes go as chunks, chunk i on channel i mod n, so that each channel's
// SSH window (2 MiB) carries its share per round trip. The far end joins
// the chunks of one SSH connection by token, in sequence order, into the
// one FTP upload; a chunk ahead of the one awaited is held, up to
// n × 2 MiB (the reorder buffer), and one that finds no room waits. The
// chunk awaited is never behind a held one: each channel carries its
// chunks in order, so the channel that carries it is not waiting on this
// publish.
//
// # Safety
//
// What a paired peer can do through a far-end channel is what it could do
// with FTP through the tunnel, with the same login, and less:
//
//   - The far end logs in to its own archive FTP (HostConfig.ArchiveFTP,
//     the tunnel server's archive_ftp) with the user and password the
//     client sends, so the FTP server still decides what may be written;
//     no host or port comes from the client. The password travels only
//     inside the encrypted channel and is never logged on either side.
//   - Every path is strictly relative and clean (no "..", no empty, "." or
//     absolute component, no "\", no control character, valid UTF-8) and
//     inside <DB>/id_<n>/level_<n>/node_<n>/ (a directory to remove: at
//     <DB>/id_<n> or below); anything else is refused without touching the
//     FTP server.
//   - A publish goes through archive.Volume.Publish: a temp name, the size
//     checked, a rename; nothing partial under a final name. Its source
//     reports the end only when exactly size - from bytes came, the client
//     ended the request well and their CRC-32C matches the one the client
//     sent (and their md5 the file's, when a request from offset 0 named
//     one; sync checks the manifests' md5s on the client): a client
//     that sends more or fewer bytes, or other ones, fails that publish and
//     its temp file is removed. A client whose source failed ends with
//     ok = false: the publish fails and its temp file stays for a resume,
//     as on the FTP path. A channel or SSH connection that ends mid-publish
//     fails it the same way (the temp file is resumed or removed by the
//     next cycle's plan). Where the archive FTP cannot rename, the far end
//     refuses publishes: a direct upload needs the journal, which lives on
//     the client, so the client stays on FTP through the tunnel.
//   - Limits: frames bounded as above; the login must come within
//     IdleTimeout (2 min), one per channel; a request's bytes must keep
//     coming (IdleTimeout), and a channel with nothing in flight is closed
//     after QuietTimeout (10 min); a result the client does not take within
//     IdleTimeout closes the channel, and a channel still blocked 5 s after
//     its close ends its SSH connection; MaxInFlight requests per channel;
//     MaxChannels (64) far-end channels per SSH connection, each also
//     counted against the tunnel's forward caps; MaxStriped (8) striped
//     publishes per SSH connection, each holding at most MaxStripes (4) ×
//     2 MiB out of order.
//
// Memory at the far end: a channel holds its SSH window (2 MiB), a frame
// buffer (256 KiB) and the feeds (256 KiB each) of at most MaxConns + 1
// unstriped publishes: one per FTP session and one receiving ahead. The
// header of a further publish waits until one of them ends, and its bytes
// wait in the SSH window, however many requests are in flight. A striped
// publish over n channels holds at most n × 2 MiB in its reorder buffer
// and 256 KiB in its feed: about 8.25 MiB for the default 4 stripes. The
// client holds two chunks (512 KiB) per stripe; a publish whose result is
// pending (Client.StartPublish) holds no bytes.
package farend
