// Package sync decides and carries out one cycle of a connection: from the
// listings of the source and destination archive volumes it plans what to
// copy, resume, defer, replace or delete (Plan, a pure function), then
// executes that plan with a pool of workers (Run), verifying every copy and
// never letting a partial file appear under its final name.
//
// The rules it implements are the ones users rely on:
//   - a file is copied only once it is stable (unchanged for SETTLE_TIME);
//   - within a backup set, data files go before metadata files, and metadata
//     is held back while any data file of its set is missing;
//   - deletions follow the source only after complete listings of both
//     sides, only inside this node's node_<i> of the configured database,
//     never when the source lists no backup set while the destination has
//     some, and never more than MaxDeleteSets sets per cycle.
package sync
