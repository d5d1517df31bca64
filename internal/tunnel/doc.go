// Package tunnel carries archive FTP traffic between two clusters over SSH:
// that is its one job. It has three parts.
//
// # Keys
//
// A KeyStore keeps one node's keys under <state_dir>/ssh (directories 0700,
// files 0600, every file written atomically: temp file, fsync, rename or
// link, fsync of the directory):
//
//	<state_dir>/ssh/
//	  host/
//	    ssh_host_ed25519_key     this node's host key (OpenSSH private key format)
//	    ssh_host_rsa_key         only if an RSA host key was asked for
//	  conn/<Connection>/
//	    id_ed25519               this node's client key for the connection
//	    id_rsa                   only if an RSA client key was asked for (RSA 3072)
//	    pending_keys             peer client keys uploaded, not yet activated
//	    authorized_keys          peer client keys activated: they may log in as <Connection>
//	    pinned_host_keys         peer host keys: the client role accepts only these
//	  unbound_keys               peer client keys uploaded without a connection
//
// Private keys are created on first need. A node has one host key per type,
// shared by all connections (an SSH server presents its host key before it
// can know the connection); its public line is shown per connection with
// the comment "backupsync-host:<Connection>@<node>". A client key is per
// connection; its line ends in "backupsync:<Connection>@<node>". The three
// key lists hold one "<type> <base64> <comment>" line per peer node, in
// authorized_keys syntax, with the comments above; a newer key from the same
// node replaces the older one.
//
// An uploaded text (UPLOAD_KEY; ParseKeyLines) is routed key by key by its
// comment: a "backupsync:C@n" key becomes a pending client key of connection
// C (server role; Activate makes it authorized), a "backupsync-host:C@n" key
// a pinned host key of C (client role; "backupsync-host:C@host:port" pins
// the key of one address). A key with any other comment, or none (the
// original plugin's RSA keys, "root@n0011.c0001.exacluster.local"), is
// unbound: it waits in unbound_keys, named after the comment's node or
// numbered ("key-1"), until the next SSHKEY of a server-role connection on
// this node binds it to that connection (BindPending) and activates it.
// Keys may be wrapped over lines the way a terminal prints them. Any invalid
// key rejects the whole upload with its line number, and nothing is
// changed.
//
// # Server role
//
// Server is an embedded SSH server (default port DefaultPort, 2022) that
// accepts public-key authentication only, for one user name
// (ServerConfig.User, default DefaultUser; another name is refused and
// logged), against the keys authorized for any connection; the matching
// key selects the connection (recorded in the permissions as
// ExtConnection). It opens nothing but direct-tcpip channels and far-end
// channels (package farend: offered in the hello as FeatureFarEnd, unless
// ServerConfig.NoFarEnd; the server then logs in to its archive FTP with
// the client's FTP credentials and publishes what the client sends, paths
// only inside the backup tree; counted against the forward caps below).
// Every direct-tcpip channel goes to the host of its archive FTP
// (ServerConfig.ArchiveFTP), whatever host the client asked for (a node reached through NAT or a relay is
// asked for the address the client dialled; the asked host is logged at
// debug level). The port rule, which a paired key cannot widen:
//
//   - the archive FTP port is allowed; every connection to it is a control
//     connection whose two directions are read as they are copied (lines of
//     at most 512 bytes kept, nothing held back);
//   - a data port is allowed once, within ExpectWindow (30 s), when the FTP
//     server announced it (227 to a PASV, 229 to an EPSV) on a control
//     connection of the same SSH connection, as Linux's nf_conntrack_ftp
//     does; an announcement on another SSH connection opens nothing;
//   - once a control connection turns to TLS (234 to AUTH), nothing more
//     can be read: its SSH connection may then reach the ports of the
//     passive range (PassivePortMin-PassivePortMax, settings
//     ssh_server.passive_ports, which configuration validation keeps clear
//     of every port the node serves); without a range FTPS data connections
//     are refused with a log line saying to set it;
//   - the server's own listening ports, ExasolDatabasePort (8563) and
//     ReservedPorts (the control plane, the metrics) are never reached,
//     whatever was announced; every other port is refused.
//
// Password and keyboard-interactive authentication, session channels
// (shell, exec, subsystems such as sftp, and with them agent and X11
// forwarding), remote forwarding (tcpip-forward) and every other channel or
// request type are refused and logged.
//
// Limits, so that a paired peer's flood or anyone's idle connections harm
// no one else: connections not yet authenticated are capped per source
// address (MaxPreAuthPerSource, 8) and in total (MaxPreAuth, 64), and when
// one more arrives the oldest is dropped to make room, so idle connections
// never keep a client out; each has HandshakeTimeout (10 s) to authenticate.
// Authenticated connections are capped by MaxConns (64). Open forwarded
// connections are capped per SSH connection (MaxChannelsPerConn, 160: 64
// PARALLEL workers with a control and a data connection each, and room),
// per connection name (MaxChannelsPerName, 256) and in total (MaxForwards,
// 512); a channel over a cap is refused at once. Refusals and drops are
// logged once per burst: the first at once, then a line per 10 s with the
// count. Each forwarded connection holds at most its SSH channel window
// (2 MiB) of data the archive FTP has not taken yet and two copy buffers
// (4 KiB each until a read fills one, then 256 KiB): measured with every
// forward stalled, 2.85 MiB of live heap each (up to 4 MiB in use before a
// collection), so about 460 MiB for one SSH connection's 160 and 1.5 GiB
// for the node's 512 (limits.go); idle, tens of KiB each
// (5,000 channel opens, 160 held: about 10 MiB of heap for the whole test
// process, TestChannelFloodFromAPairedPeer). The accept loop
// survives every accept error but a closed listener (out of file
// descriptors included: it waits 5 ms, doubling to 1 s); Health reports
// whether it listens, its restarts and its last error.
//
// # Client role
//
// Client dials the peer's nodes in order (default port DefaultPort, user
// DefaultUser) and authenticates with the connection's client key. Host
// keys (HostKeyPolicy): a key uploaded for the connection is accepted at
// any node; while none is uploaded, in the default mode (accept-new, as
// OpenSSH's) the first key an address presents in a successful login is
// pinned for that address (PinFirstUse, logged "pinned host key SHA256:… of
// ADDR for C on first use") and from then on only it is accepted there; a
// changed key fails with a HostKeyError naming both fingerprints and how to
// remove the pin. In "pinned" mode only uploaded keys count.
//
// A refused login says why (RefusedError): the server sends an
// authentication banner "backupsync refused (REASON): …" — no-key to any
// peer (it says only that the offered key is unknown), pending or
// not-served only once the peer proved it holds the key (the decision is
// made in VerifiedPublicKeyCallback); no banner names a connection. A TCP
// refusal is not-running. After login the client sends the
// "backupsync-hello" global request with its connection name and the
// features it can use (FeatureFarEnd); a backupsync server answers with the
// connection the key is authorized for and the features it offers, and a
// different name fails with RefusedNameMismatch. A server from before
// features refuses that hello (the longer payload does not parse); the
// client then sends the plain hello, which such a server answers with the
// two-field reply, and goes on without the far end. OpenSSH answers both
// with a failure and the tunnel goes on as plain port forwarding.
// Client.FarEnd reports the offer, Client.OpenFarEnd opens a far-end
// channel (a farend.OpenFunc).
// keepalive@openssh.com requests detect a dead peer; the next dial
// reconnects, failing over to the next node when one is down. All tunnelled
// connections share one SSH connection.
//
// Client.DialContext is the dial function for FTP through the tunnel (see
// its doc for the jlaffaye/ftp pitfalls it absorbs: the 0.0.0.0 data host,
// no deadlines on channels, io.EOF from Close, and the idle watchdog that
// replaces jlaffaye's shut timeout). Closing an x/crypto/ssh channel does
// not by itself wake a Read or Write blocked on it; the peer's answer to the
// close does, which its SSH layer sends at once, within a round trip. A peer
// that does not answer within closeGrace (5 s) is frozen: the client then
// closes the SSH connection under the blocked call. Channel I/O runs in the
// caller's goroutine: no hand-off per message. When the SSH connection
// breaks, x/crypto/ssh ends every channel with a plain io.EOF; the tunnel
// reports ErrConnectionLost instead, so a truncated RETR never looks
// complete, and the server resets (rather than half-closes) the archive FTP
// side, so a truncated STOR is aborted by the FTP server rather than
// completed.
//
// # Ciphers, window, connections
//
// Both roles prefer aes128-gcm@openssh.com (then aes256-gcm, chacha20-poly1305,
// aes-ctr), chosen by measurement (TUNNEL_MEASURE=1 go test -run
// TestMeasureThroughput; docs/BENCHMARKS.md has the figures): with AES-NI it
// costs client and server together about 2 CPU seconds per GiB, as much as
// OpenSSH's ssh -L to sshd with the same cipher, aes128-ctr about 3 and Go's
// chacha20-poly1305 about 6. The channel window is fixed by x/crypto/ssh
// (2 MiB, as OpenSSH's for forwarded connections) and cannot be tuned
// through its API: over a long link one stream carries at most a window per
// round trip (TestMeasureRoundTrip), so parallel files, not a bigger window,
// fill the link. Four streams over two SSH connections were not measurably
// faster than over one, so all tunnelled connections share one SSH
// connection.
// Both roles gather the SSH connection's outgoing packets (transportConn):
// x/crypto/ssh sends each packet with its own system call, and with one FTP
// data connection per file most of a small file's cost was those sends;
// gathered, 5,000 files of 16 KiB went through about 14% faster, 8 of
// 64 MiB about 16% (commit db54466), and another 8% once the flusher let
// the other ready goroutines write first (commit d327e42).
package tunnel
