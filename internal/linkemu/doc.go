// Package linkemu emulates a long network link in user space, for tests and
// bench/compare.sh: the kernel here has no netem. A Link is a TCP relay on
// loopback addresses that forwards every accepted connection to a target
// and, in each direction,
//
//   - delivers every byte RTT/2 after it entered the link, so a request and
//     its answer take at least one RTT;
//   - paces the bytes to Rate, one token bucket per direction shared by
//     every connection of the Link (of all its Listen addresses): the
//     connections share one link as they would share one WAN path. Over
//     any stretch of time T a direction delivers at most Burst + Rate × T
//     bytes (Burst: by default what the link carries in 4 ms);
//   - holds at most Queue bytes per connection that it read and has not
//     delivered yet (plus one 64 KiB read). A direction that is full stops
//     reading from its source, whose TCP window then closes: a slow reader
//     at one end exerts back-pressure on the writer at the other, as a
//     socket buffer would. The default Queue is Rate × RTT/2 (what is on the
//     wire at full rate) plus 4 MiB, or 16 MiB when Rate is unlimited; a
//     single connection through the link carries at most Queue per RTT/2.
//     Memory: at most 2 × (Queue + 64 KiB) per relayed connection.
//
// A half-close travels like data: when one end shuts down its writing, the
// other end sees EOF after the bytes before it, RTT/2 later, and the other
// direction keeps flowing. When reading from or writing to either end fails
// (a reset, a close), both ends are closed. A relayed connection ends when
// both directions have delivered their EOF.
//
// What it does not emulate: loss, reordering, jitter, and the endpoints'
// own TCP behaviour at a distance. Both ends talk TCP to the relay over
// loopback, so there is no slow start or loss recovery over the emulated
// RTT: a stream can fill the link from its first round trip, and what
// bounds it is its application's window (an SSH channel's) or Queue. The
// TCP handshake is not charged either: the target is dialled when the
// client's connection is accepted, so a new connection's first bytes cost
// RTT/2 like any others, not the extra round trip of a real SYN.
//
// Only loopback addresses: Listen refuses to listen on, or forward to, an
// address that is not a loopback IP literal (127.0.0.0/8, ::1), and the
// dialler refuses any other address. Close stops accepting, closes every
// relayed connection and returns once all of the Link's goroutines have
// ended.
//
// The command internal/linkemu/cmd/linkemu runs a Link for scripts
// (bench/compare.sh's WAN stage).
package linkemu
