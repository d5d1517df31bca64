// Package config reads the two files a backupsync node is configured by: the
// legacy connection blocks of the original BackupSync plugin (the file that
// UPLOAD_CONFIG writes) and the daemon's own HCL settings (backupsyncd.hcl).
//
// Both readers report every problem at once, each with the file, line and
// column it concerns, and neither ever puts a password into an error message
// or into the canonical form the model prints back.
package config
