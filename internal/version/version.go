// Package version names the build of backupsync the binaries belong to.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release; packaging sets it with
// -ldflags "-X backupsync/internal/version.Version=…".
var Version = "0.1.0-dev"

// String is the one-line answer to --version: release, commit when the
// build recorded one, and the Go release it was built with.
func String(program string) string {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " (" + s.Value[:12] + ")"
			}
		}
	}
	return fmt.Sprintf("%s %s%s %s", program, Version, rev, runtime.Version())
}
