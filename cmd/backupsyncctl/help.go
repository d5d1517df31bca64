package main

import (
	"fmt"
	"io"
	"strings"
)

// commandHelp is what "backupsyncctl help CMD" and "backupsyncctl CMD
// --help" print after a command's usage line and summary: what it does in
// detail, its own flags and its exit status. Every command has an entry
// (TestHelpEveryCommand).
var commandHelp = map[string]string{
	"plugins": `Lists the plugins the cluster's plugin surface offers (showPluginList); backupsyncd offers
one, Administration.BackupSync-VERSION. Through ConfD's dialect there is none.`,
	"nodes": `Lists the cluster's nodes in order (getNodeList; through ConfD, node_list): the names that
--nodes takes and that every table's NODE column shows.`,
	"functions": `Lists the plugin's verbs with their descriptions (showPluginFunctions): the guide's nine.`,
	"install": `Runs INSTALL on every node: the plugin's state is created; nothing is configured yet.
Next: upload-config FILE (or pair, which does every step).`,
	"uninstall": `Runs UNINSTALL on every node: activations and sync state go; SSH keys and backups stay.
Refused while a connection is activated: deactivate it first.`,
	"activate": `Runs ACTIVATE CONN on every node: the connection's cycles run on its START_CYCLE from now.
On a client with host_keys = "pinned" it is refused until the server's host keys are uploaded.`,
	"deactivate": `Runs DEACTIVATE on every node: the connection (or every connection without CONN) stops
running cycles; a running cycle finishes its files first.`,
	"status": `Without CONN: the health of every connection on every node (STATUS *): ok, failing (since
when, the cause and the next step), never ran, running (progress). With CONN: that
connection's report on every node (STATUS CONN).
Exit 1 when any connection is failing or a node does not answer, so scripts can rely on it.`,
	"getlog": `Prints the last lines of every node's plugin log (GETLOG): each node's lines under a
"== NODE ==" header, as they are, health lines first.
  --lines N   how many lines per node (default 200)`,
	"sshkey": `Runs SSHKEY CONN on every node: on the client cluster each node's client key, on the server
cluster it authorizes the uploaded client keys and answers each node's host key.
  -o FILE     also write the key lines, one per node, to FILE for upload-key on the other
              cluster (only when every node answered a key)`,
	"upload-config": `Checks FILE as the daemons read it, then sends it to every node (UPLOAD_CONFIG): the
connections it names are added or replaced, the others kept; a block Name { REMOVE = true }
removes one. Each node answers what changed and, for a copying connection, which remote node
its part goes to. Nothing is sent when FILE does not parse.`,
	"upload-key": `Sends FILE (the other cluster's sshkey -o output, one key line per node) to every node
(UPLOAD_KEY). On the server cluster, run sshkey CONN afterwards to authorize the keys.`,
	"test": `Runs the pre-flight test of CONN on every node now (the verb TEST): both logins (through
the tunnel for SSH = client), the listings of this node's part on both sides, and a probe
file written, read back and removed at the destination (outside every backup set).
Each node answers one line per step: ok, failed (with the cause and the next step), skipped.
Exit 1 when any node failed. ConfD's dialect has no test job.`,
	"pair": `Pairs two clusters for one connection, idempotently (the guide's steps 4-10), then tests it.
Which file goes where:
  --source URL          the source cluster: the one whose backups are copied
  --dest URL            the destination cluster: the one that receives them
  --source-config FILE  the client config (the connection with SSH = client: DATABASE_NAME,
                        START_CYCLE, LOCAL_URL, REMOTE_URL, REMOTE_NODES); uploaded to every
                        node of the source cluster
  --dest-config FILE    the server config (the same connection name with SSH = server);
                        uploaded to every node of the destination cluster
  --connection NAME     the connection both files name, e.g. Connection1
  --source-fingerprint, --dest-fingerprint   pin each cluster's certificate
What it does: checks both files locally and that every node of both clusters answers, and
says which source node goes to which REMOTE_NODES entry (an entry that is not a node of the
destination cluster is flagged) before it changes anything; then INSTALL on both,
UPLOAD_CONFIG of each file, SSHKEY on the source (its client keys), UPLOAD_KEY of those to the
destination and SSHKEY there (authorizes them, answers its host keys), UPLOAD_KEY of the host
keys to the source, ACTIVATE on the destination, then on the source.
What is tested at the end: the pre-flight TEST on every source node (as backupsyncctl test
CONN): the logins to both archive volumes through the tunnel, the listings, and a probe file
written and removed at the destination. Exit 1 when a step or the test fails: the message
names the step, the nodes and what to fix; running the same command again is safe.`,
	"backups": `Lists the backup sets of database DB on the cluster's archive volume (ConfD's
db_backup_list, on the same endpoint): ID, LEVEL, TIME (RFC 3339, UTC), SIZE, whether the set
is usable (its level 0 and every level before it are complete), then one column per node with
its part's state at the destination: synced (every file there with its size), partial (some),
missing (none), unknown (the destination could not be listed).
Exit 1 when the listing is incomplete (a node did not answer).`,
	"hash-password": `Reads a password (from stdin, or a prompt without echo on a terminal) and prints its bcrypt
hash for the settings: xmlrpc { user "admin" { password_hash = "HASH" } }.`,
	"version": `Prints backupsyncctl's version.`,
	"help": `Without COMMAND: every command and the flags. With COMMAND: that command's help (as
backupsyncctl COMMAND --help).`,
}

// helpWidth is the width help text is wrapped to.
const helpWidth = 100

// wrap breaks text at spaces into lines of at most width columns, for a
// first line that starts at column len(indent) (after a label as wide) and
// further lines that start with indent. A word longer than a line stays
// whole.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := len(indent)
	for i, w := range strings.Fields(text) {
		n := len([]rune(w))
		switch {
		case i == 0:
		case line+1+n > width:
			b.WriteString("\n" + indent)
			line = len(indent)
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += n
	}
	return b.String()
}

// printCommandHelp prints one command's help: its usage line, summary and
// details.
func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace("backupsyncctl [flags] "+c.name+" "+c.args), wrap(c.help, helpWidth, ""))
	if d := commandHelp[c.name]; d != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(d))
	}
	if c.name != "help" && c.name != "version" && c.name != "hash-password" {
		fmt.Fprintln(w, "\nThe flags every command takes (--url, --insecure, --fingerprint, --nodes, --json, --timeout,\n--api) are in backupsyncctl help.")
	}
}
