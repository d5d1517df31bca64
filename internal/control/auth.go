package control

import (
	"net/http"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Users maps a login to its bcrypt password hash.
type Users map[string]string

// dummyHash is compared against for unknown users, so that a wrong user
// costs as long as a wrong password. It is a literal (bcrypt of
// "backupsync-dummy" at DefaultCost) because computing it at init cost every
// process start, backupsyncctl's included, 70 ms of CPU.
var dummyHash = []byte("$2a$10$bfSB4troqPY51CT4nPVm1.wmgswodZIWJZhGqseKb8iyWGvJjOqvu")

// failureDelay slows down guessing.
const failureDelay = 300 * time.Millisecond

// RequireLogin wraps h with HTTP Basic auth against users: missing or wrong
// credentials are answered 401 after a short delay. It remembers nothing
// between requests: a daemon uses Login.Require, which also throttles
// guessing per source address.
func RequireLogin(users Users, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, ok := r.BasicAuth()
		if ok && users.check(user, password) {
			h.ServeHTTP(w, r)
			return
		}
		time.Sleep(failureDelay)
		unauthorized(w)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="backupsync"`)
	http.Error(w, "401 Unauthorized: wrong or missing user and password", http.StatusUnauthorized)
}

func (u Users) check(user, password string) bool {
	hash, known := u[user]
	if !known {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	// bcrypt compares in constant time.
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// HashPassword returns the bcrypt hash to put into the settings.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}
