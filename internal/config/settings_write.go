package config

import (
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Marshal writes the settings as a backupsyncd.hcl file that ReadSettings
// reads back to the same settings (paths as they are, so write them
// absolute or relative to where the file goes). Tools that generate a
// node's settings — the demo, the test clusters — use it rather than a
// template of their own.
func (s *Settings) Marshal() []byte {
	f := hclwrite.NewEmptyFile()
	gohcl.EncodeIntoBody(s, f.Body())
	return f.Bytes()
}
