package confd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"backupsync/internal/ftptest"
)

// BackupSets answers what db_backup_list answers, with each node's part
// and its synced state.
func TestBackupSetsPerNode(t *testing.T) {
	nodes := startCluster(t, "127.0.15.6", "127.0.15.7")
	local := []*ftptest.Server{ftptest.Start(t, ftptest.KindEmbedded, "127.0.15.6"), ftptest.Start(t, ftptest.KindEmbedded, "127.0.15.7")}
	dst := ftptest.Start(t, ftptest.KindEmbedded, "127.0.15.8")
	for i, n := range nodes {
		n.svc.Surface.Local.Settings.FTPDefaultPort = local[i].Port
		cfg := fmt.Sprintf("Copy\n{\nDATABASE_NAME = DB1\nSTART_CYCLE = @every 1h\nLOCAL_URL = ftp://%[1]s:%[2]s@%%s/v0003\nREMOTE_URL = ftp://%[1]s:%[2]s@%%s:%[3]d/v0003\nREMOTE_NODES = 127.0.15.8\nSSH = none\n}\n",
			local[i].User, local[i].Password, dst.Port)
		os.WriteFile(n.svc.Surface.Local.Settings.ConnectionsFile, []byte(cfg), 0o600)
	}
	hour := time.Now().Add(-time.Hour).Truncate(time.Minute)
	dvol := filepath.Join(dst.Dir, "v0003")
	for i := range 2 {
		vol := filepath.Join(local[i].Dir, "v0003")
		node := fmt.Sprintf("node_%d", i)
		for _, d := range []string{vol, dvol} {
			writeFile(t, d, "DB1/id_1/level_0/"+node+"/data", 4096, hour)
		}
		writeFile(t, vol, "DB1/id_2/level_1/"+node+"/data", 2048, hour)
	}
	writeFile(t, dvol, "DB1/id_2/level_1/node_0/data", 2048, hour)

	sets, problems, unconfigured := nodes[1].svc.BackupSets(context.Background(), " DB1 ")
	if len(problems) != 0 || unconfigured || len(sets) != 2 {
		t.Fatalf("BackupSets = %+v, %v, %v", sets, problems, unconfigured)
	}
	type part struct {
		node   string
		synced bool
	}
	for i, want := range []struct {
		id, level int
		synced    bool
		parts     []part
	}{
		{1, 0, true, []part{{"n0011", true}, {"n0012", true}}},
		{2, 1, false, []part{{"n0011", true}, {"n0012", false}}},
	} {
		s := sets[i]
		if s.ID != want.id || s.Level != want.level || s.Synced == nil || *s.Synced != want.synced || !s.Usable || s.Volume != "v0003" {
			t.Errorf("set %d: %+v", i, s)
		}
		if len(s.Parts) != len(want.parts) {
			t.Fatalf("set %d parts %+v", i, s.Parts)
		}
		for j, p := range s.Parts {
			if p.Node != want.parts[j].node || p.Index != j || p.Synced == nil || *p.Synced != want.parts[j].synced || p.Files != 1 {
				t.Errorf("set %d part %d: %+v", i, j, p)
			}
		}
	}
	if _, _, unconfigured := nodes[0].svc.BackupSets(context.Background(), "DB7"); !unconfigured {
		t.Error("DB7: no connection copies it, want unconfigured")
	}
}
