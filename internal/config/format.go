package config

import (
	"strings"
)

// Format prints connections back in the legacy block format, keys in
// canonical order and spelling, every key the role accepts shown with its
// value (defaults included), passwords masked as ***. The result parses
// again to the same model except for the masked passwords.
func Format(conns []Connection) string {
	var b strings.Builder
	for i := range conns {
		c := &conns[i]
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(c.Name + "\n{\n")
		for _, k := range keys {
			if !k.accepts(c.Role) {
				continue
			}
			b.WriteString(k.name + " = " + k.format(c) + "\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}
