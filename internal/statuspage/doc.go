// Package statuspage serves the control plane's status page: GET / (and
// any path ending in "/", such as EXAoperation's /cluster1/) on the same
// HTTPS listener and behind the same login as the XML-RPC endpoint, which
// keeps answering POST. The page shows the whole cluster, whichever node
// answers it:
//
//   - every copying connection × node with its health (package health: ok,
//     failing with since, cycles, cause and next step, never ran, running
//     with files and bytes of the total, rate and ETA), lag, last cycle and
//     next run; failing rows are marked in colour and with the word
//     "failing";
//   - the tunnels this cluster serves (SSH = server connections);
//   - the backup sets of each copied database with their synced state per
//     node, as db_backup_list knows it (confd.Service.BackupSets);
//   - charts of lag and of bytes copied over the last day and the last
//     week, from each node's cycle history (package history), drawn on the
//     server as inline SVG.
//
// It is plain server-rendered HTML (html/template escapes every value) with
// inline CSS: no script, no build step, no asset from the internet. It
// reloads itself every minute (a meta refresh) and has a reload link.
//
// Each node's data is asked of that node's daemon in parallel with the
// cluster login (Surface.PeerUser), through the XML-RPC method NodeMethod,
// within NodeTimeout; an answer is at most MaxNodeAnswerBytes and held to
// the history's bounds. A node that does not answer is shown as such, with
// the reason. At most MaxNodes nodes are asked. The backup sets are listed
// live (every node lists its archive volume and the destinations) within
// BackupsTimeout and kept for BackupsMaxAge, so that reloads and several
// admins do not multiply the listings; an older listing is shown (and
// says so) while the next one runs in the background, and only the first
// load of a database waits for its listing.
package statuspage
