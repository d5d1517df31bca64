// Package confd speaks the ConfD dialect of Exasol 7.1/8 for backupsync:
// that is its one job. It adds job_exec, job_list, job_help and job_desc to
// the daemon's XML-RPC server (the one of the plugin surface, so the same
// HTTPS endpoint, paths and users answer both dialects) and serves
// GET /master. Any daemon answers for the whole cluster, as with callPlugin:
// what concerns another node is asked of that node's daemon.
//
// # Calls and results
//
//	job_exec(name[, {'params': {...}}])   run a job
//	job_list()                            result_output: the job names, sorted
//	job_help(name)                        result_output: {'name', 'description', 'mandatory': [...],
//	                                        'optional': [...], 'substitutes': {param: replaced},
//	                                        'allowed_users': [...], 'read_only': bool}
//	job_desc(name)                        result_output: the job's one-line description
//
// Every call answers a dict: result_code, result_name, result_desc,
// result_jobid, and result_output where there is data. result_jobid is
// '<n>.<m>': n is this node's id (the number its name ends with, '11' for
// n0011, as ConfD's '11.89'), m counts up on this daemon and keeps counting
// after a restart (state_dir/confd/jobid). result_revision appears after a
// job that writes stored state (install, uninstall, upload_config, sshkey,
// upload_key, activate, deactivate) succeeded on at least one node; it is
// this daemon's count of such jobs (state_dir/confd/revision), not an
// EXAConf revision, which backupsync does not have.
//
// Success is result_code 0, result_name 'OK', result_desc 'Success'.
// Failures are answered the same way, never as an XML-RPC fault, with the
// reason in result_desc (ConfD's own failure codes are not documented;
// these are ours):
//
//	1 ERROR              the job ran and failed (on at least one node: result_desc names each)
//	2 INVALID_PARAMETER  a mandatory parameter is missing, or one is unknown or of a wrong type: named
//	3 UNKNOWN_JOB        no job of that name
//	4 NOT_PROVIDED       a ConfD job only the database's own ConfD can do (db_start, db_stop,
//	                     db_state, db_backup_start, st_volume_*, …): the reason says so
//
// None (<nil/>) is accepted wherever a value may be: as the options dict, as
// 'params', and as a parameter's value, which then counts as absent.
// Job names are matched case-insensitively.
//
// # The BackupSync jobs
//
//	backupsync_install, backupsync_uninstall
//	backupsync_upload_config {config}      the connections file: its text, or base64 of it
//	backupsync_sshkey {connection}
//	backupsync_upload_key {key}            the key lines: their text, or base64 of it
//	backupsync_activate {connection}
//	backupsync_deactivate {connection?}
//	backupsync_status {connection?}
//	backupsync_getlog {lines?}
//
// Each runs the plugin verb of its name on the nodes, concurrently, exactly
// as callPlugin runs it (control.Surface.CallNode: locally or forwarded; a
// node that does not answer is code 256 "<node> unreachable: …" within the
// forward timeout). Each takes an optional 'nodes': a list of node names or
// ids (['n0011', '12'] or [11]) or one string of them separated by commas;
// without it, every node of the cluster. result_output holds one entry per
// node, keyed by the node's name:
//
//	{'n0011': {'code': 0, 'output': 'activated'}, 'n0012': {'code': 256, 'output': '…'}}
//
// where code and output are what callPlugin answers for that node (0, or
// 256 for a failed verb). The job's result_code is 0 when every node
// answered code 0, else 1, with result_desc "backupsync_activate failed on
// 1 of 3 node(s): n0012: <first line of its output>".
//
// # The read-only jobs of the seed
//
// node_list: {'11': {'id': '11', 'name': 'n0011', 'private_ip': '10.0.0.11',
// 'control_url': 'https://10.0.0.11:4443/'}, …} — the daemons of the cluster
// settings. ConfD's disks, docker_volume, exposed_ports, uuid and
// private_net are not known to backupsync and left out.
//
// node_state: {'11': 'online', '12': 'offline', 'booted': {'11': 'Tue Jul  7
// 14:14:07 2020'}}. online means the node's backupsyncd answered a ping
// within 2s; booted is when that daemon started (not the machine), in its
// time zone, for online nodes only.
//
// remote_volume_list: the remote archive volumes, one per copying
// connection (SSH = client or none) of the answering node's connections
// file, named after the connection: ['Connection1']. remote_volume_state
// {remote_volume_name} (a connection's name, or 'r0001' for the first of
// the list; substitute remote_volume_id, 10001 for the first): one state
// per node of the cluster, in the cluster's order: 'Online' when the node
// could log in to the volume the way its cycles reach it (direct with
// failover along REMOTE_NODES, or through the connection's SSH tunnel) and
// enter its root within 10s; 'Unmounted' when it logged in but the volume
// root is missing; 'Connection problem' otherwise, also when the node's
// daemon does not answer or the node lacks the connection. The reason is in
// that node's log (GETLOG). Logging in runs the archive probe, which stores
// and removes a scratch file in the volume root, as every cycle does.
//
// db_backup_list {db_name}: every node lists its own part (node_<index>)
// of the database on the LOCAL_URL volume of each connection that copies
// it, the answering daemon merges them into one row per backup set:
//
//	{'bid': 11, 'level': 0, 'system': 'DB1', 'volume': 'v0003',
//	 'path': 'DB1/id_11/level_0/node_0/backup_202007071405',
//	 'ts': '202007071405', 'timestamp': '2020-07-07 14:05',
//	 'usage': '0.001 GiB', 'usable': True, 'dependencies': '-',
//	 'expire': '', 'expired': False, 'last_item': True,
//	 'comment': '', 'id': 'v0003 DB1/id_11/level_0/node_0/backup_202007071405 DB1',
//	 'expire_alterable': 'v0003 DB1/id_11/level_0', 'synced': True}
//
// What each field rests on, and what backupsync cannot know:
//   - path is the set's lowest node part, with the backup_<YYYYMMDDHHMM>
//     entry Exasol writes into it when there is one; ts and timestamp come
//     from that name, or else from the newest file's modification time as
//     the volume lists it (to the minute), in the daemon's time zone.
//   - usage is the size of the set's files on all nodes (temporary upload
//     files excluded), in GiB.
//   - usable: every node answered, every node part the database has (the
//     node indices seen in any of its sets on that volume: backupsync does
//     not know the database's node count) holds files, and the set it builds
//     on is usable. Exasol's own notion (checksums, its catalogue) is not
//     visible in a listing.
//   - dependencies: '-' for level 0; for level L the newest level L-1 set
//     before it ('DB1/id_10/level_0'), or "missing: …" (then not usable).
//     last_item: no set builds on this one.
//   - expire and expired: the expiry time lives in Exasol's backup
//     catalogue, not on the volume; backupsync cannot read it and answers
//     an empty expire and expired False (a listed set has not been deleted yet: Exasol deletes
//     expired sets, and backupsync's copies follow the deletions).
//   - id and expire_alterable name the volume by its name where ConfD has a
//     numeric volume id.
//   - synced: True when the destination of every connection copying the
//     set holds each of its files under its final name with the same size,
//     on every node, as listed now; False when one lacks a file or holds
//     another size; None (XML-RPC nil) when a destination could not be
//     listed (the reason is in that node's log). backupsync verifies every
//     copy it writes (size, and md5 where a manifest lists the file), so a
//     set it copied and still finds complete is a verified copy; files put
//     there by anything else are checked by size only.
//
// Both volumes are opened read-only: db_backup_list writes nothing, not
// even the probe's scratch file. A node that does not answer, or cannot
// list its volume, makes the job's
// result_code 1 with the reason; the rows of the other nodes are still in
// result_output, their sets marked unusable. A database no connection
// copies is result_code 1 as well.
//
// # GET /master
//
// GET /master on any daemon answers, as text/plain without a newline, the
// IP of the cluster's first node (in the order of the cluster settings)
// whose daemon answers a ping within 2s: the node that answers for the
// cluster. It needs no login: ConfD's does not (the seed fetches it before
// logging in), and it tells nothing but the address of one node of the
// cluster to someone who reached another. The answer is reused for 2s, so
// that unauthenticated requests cannot make the daemon probe its peers at
// will. Other methods are answered 405.
package confd
