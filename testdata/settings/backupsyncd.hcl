# An example of the daemon's settings (backupsyncd.hcl) for node n0011.
node {
  name  = "n0011"      # as getNodeList shows it
  ip    = "127.0.0.11" # replaces %s in LOCAL_URL
  index = 0            # database node index: this node syncs node_0
}

connections_file = "../seed/client.cfg" # relative paths are relative to this file
state_dir        = "/tmp/backupsync-example-state"
ftp_default_port = 2021
