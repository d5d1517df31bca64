package sync

import (
	"context"

	"backupsync/internal/archive"
)

// Volume adapts an archive volume to both sides of a cycle.
type Volume struct {
	*archive.Volume
}

// ListNode lists the volume in the planner's terms.
func (v Volume) ListNode(ctx context.Context, database string, node int) (Listing, error) {
	l, err := v.Volume.ListNode(ctx, database, node)
	if err != nil {
		return Listing{}, err
	}
	files := make([]File, len(l.Files))
	for i, e := range l.Files {
		files[i] = File{Path: e.Path, Size: e.Size, ModTime: e.ModTime, Exact: e.Exact}
	}
	return Listing{Files: files}, nil
}
