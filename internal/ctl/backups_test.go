package ctl

import (
	"bytes"
	"testing"
)

func TestWriteBackupTable(t *testing.T) {
	yes := true
	b := &Backups{Database: "DB1", Nodes: []string{"n0011", "n0012"}, Sets: []Backup{
		{ID: 1, Level: 0, Time: "2026-12-06T01:20:00Z", Bytes: 3 << 20, Usable: true, Synced: &yes, Nodes: map[string]string{"n0011": "synced", "n0012": "synced"}},
		{ID: 12, Level: 1, Bytes: -1, Nodes: map[string]string{"n0011": "partial"}},              // n0012 has no part
		{ID: 13, Level: 1, Time: "2026-12-06T01:30:00Z", Bytes: 512, Nodes: map[string]string{}}, // an earlier daemon: no per-node states
	}}
	var out bytes.Buffer
	WriteBackupTable(&out, b)
	want := "" +
		"ID  LEVEL  TIME                     SIZE  USABLE  n0011    n0012\n" +
		" 1  0      2026-12-06T01:20:00Z  3.0 MiB  yes     synced   synced\n" +
		"12  1      -                           ?  no      partial  -\n" +
		"13  1      2026-12-06T01:30:00Z    512 B  no      unknown  unknown\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	WriteBackupTable(&out, &Backups{Database: "DB2", Nodes: []string{"n0011"}})
	if want := "ID  LEVEL  TIME  SIZE  USABLE  n0011\n(no backup set of DB2 on the archive volume)\n"; out.String() != want {
		t.Errorf("empty:\n%q\nwant\n%q", out.String(), want)
	}
}
