//go:build !unix

package runner

import (
	"errors"
	"os"
)

// tryLock: cycle locks need flock(2), which only Unix systems have.
func tryLock(f *os.File) (bool, error) {
	return false, errors.New("cycle locks need a Unix system")
}
