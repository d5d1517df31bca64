package ftptest

import (
	"backupsync/internal/proctree"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// optDir is where test/install-deps.sh unpacks server packages that conflict
// with vsftpd: optDir/<kind>/usr/sbin/<kind>.
const optDir = "/opt/backupsync-test"

// findBinary locates a real server's executable.
func findBinary(kind string) (string, error) {
	if p, err := exec.LookPath(kind); err == nil {
		return p, nil
	}
	for _, p := range []string{
		filepath.Join("/usr/sbin", kind),
		filepath.Join(optDir, kind, "usr/sbin", kind),
	} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH, in /usr/sbin or under %s/%s", kind, optDir, kind)
}

// findTool locates a helper program shipped with a server kind.
func findTool(kind, name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"usr/bin", "usr/sbin"} {
		p := filepath.Join(optDir, kind, d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or under %s/%s", name, optDir, kind)
}

var (
	userOnce sync.Once
	userErr  error
	userUID  int
	userGID  int
)

// ensureSystemUser creates SystemUser once per process (tolerating a
// concurrent creation by another test process) and sets its password, shell
// and home so that PAM accepts the login.
func ensureSystemUser() error {
	userOnce.Do(func() { userErr = createSystemUser() })
	return userErr
}

func createSystemUser() error {
	home := "/home/" + SystemUser
	if _, err := user.Lookup(SystemUser); err != nil {
		// useradd exits 9 when the user exists (another package won the
		// race) and 10 when it cannot lock /etc/passwd (retry).
		err := retryLocked(func() ([]byte, error) {
			return exec.Command("useradd", "-m", "-d", home, "-s", "/bin/sh",
				"-c", "backupsync test FTP user", SystemUser).CombinedOutput()
		}, 9)
		if err != nil {
			return fmt.Errorf("useradd %s: %w", SystemUser, err)
		}
	}
	u, err := user.Lookup(SystemUser)
	if err != nil {
		return fmt.Errorf("look up %s: %w", SystemUser, err)
	}
	if userUID, err = strconv.Atoi(u.Uid); err != nil {
		return fmt.Errorf("uid of %s: %w", SystemUser, err)
	}
	if userGID, err = strconv.Atoi(u.Gid); err != nil {
		return fmt.Errorf("gid of %s: %w", SystemUser, err)
	}
	if u.HomeDir != "" {
		if err := os.MkdirAll(u.HomeDir, 0o755); err != nil {
			return fmt.Errorf("home of %s: %w", SystemUser, err)
		}
	}
	err = retryLocked(func() ([]byte, error) {
		// A cheap hash: PAM's check of Debian's default (yescrypt) costs
		// 0.4–1 s per login under load, paid by every connection a test opens.
		c := exec.Command("chpasswd", "-c", "SHA512", "-s", "1000")
		c.Stdin = strings.NewReader(SystemUser + ":" + password + "\n")
		return c.CombinedOutput()
	})
	if err != nil {
		return fmt.Errorf("chpasswd %s: %w", SystemUser, err)
	}
	return nil
}

// retryLocked runs f until it succeeds or exits with one of okCodes, retrying
// for a while on other failures (the shadow files may be locked by a
// concurrent useradd or chpasswd).
func retryLocked(f func() ([]byte, error), okCodes ...int) error {
	var last error
	for i := 0; i < 50; i++ {
		out, err := f()
		if err == nil {
			return nil
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			for _, c := range okCodes {
				if ee.ExitCode() == c {
					return nil
				}
			}
		} else {
			return err
		}
		last = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		time.Sleep(time.Duration(50+10*i) * time.Millisecond)
	}
	return last
}

// process is a running real server and its process group.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid after done is closed
	log  string
}

func (p *process) alive() error {
	select {
	case <-p.done:
		out, _ := os.ReadFile(p.log)
		return fmt.Errorf("server exited (%v): %s", p.err, bytes.TrimSpace(out))
	default:
		return nil
	}
}

// stop kills the server and every process descending from it (vsftpd's
// session processes start their own sessions, so the process group is not
// enough) and waits for the server to exit.
func (p *process) stop() {
	pid := p.cmd.Process.Pid
	// Freeze the server so it forks no new session while we collect them.
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	for i := 0; i < 50; i++ {
		kids := proctree.Descendants(pid)
		if len(kids) == 0 {
			break
		}
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-p.done
}

// startReal writes the server's configuration into s.confDir, starts it in
// the foreground in its own process group, and waits for a login.
func startReal(s *Server) (*process, error) {
	bin, err := findBinary(s.Kind)
	if err != nil {
		return nil, err
	}
	var args []string
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	switch s.Kind {
	case KindVsftpd:
		args, err = vsftpdConfig(s)
	case KindProftpd:
		args, err = proftpdConfig(s)
	case KindPureFTPd:
		args, err = pureConfig(s, attr)
	}
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(s.confDir, s.Kind+".out")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.confDir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if err := waitLogin(s.Addr(), s.User, s.Password, p.alive, 15*time.Second); err != nil {
		p.stop()
		out, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w; server output: %s", err, bytes.TrimSpace(out))
	}
	return p, nil
}

func writeFile(path, content string, mode os.FileMode) error {
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// vsftpdConfig: PAM login of the system user, session mapped to root
// (guest_username; to the system user itself when unprivileged), chrooted
// to Dir, passive on Host.
func vsftpdConfig(s *Server) ([]string, error) {
	conf := filepath.Join(s.confDir, "vsftpd.conf")
	guest := "root"
	if s.unprivileged {
		guest = SystemUser
	}
	text := strings.Join([]string{
		"listen=YES",
		"listen_ipv6=NO",
		"listen_address=" + s.Host,
		"listen_port=" + strconv.Itoa(s.Port),
		"background=NO",
		"anonymous_enable=NO",
		"local_enable=YES",
		"write_enable=YES",
		"local_umask=022",
		"chroot_local_user=YES",
		"allow_writeable_chroot=YES",
		"local_root=" + s.Dir,
		"guest_enable=YES",
		"guest_username=" + guest,
		"virtual_use_local_privs=YES",
		"pasv_enable=YES",
		"pasv_address=" + s.Host,
		"pasv_addr_resolve=NO",
		"connect_from_port_20=NO",
		"seccomp_sandbox=NO",
		"pam_service_name=vsftpd",
		"secure_chroot_dir=" + filepath.Join(s.confDir, "empty"),
		"max_clients=500",
		"max_per_ip=500",
		"idle_session_timeout=600",
		"data_connection_timeout=300",
		"xferlog_enable=NO",
		"dual_log_enable=NO",
		"syslog_enable=NO",
		"vsftpd_log_file=" + filepath.Join(s.confDir, "vsftpd.log"),
		"use_localtime=NO",
		"",
	}, "\n")
	if s.pasvMin != 0 {
		text += fmt.Sprintf("pasv_min_port=%d\npasv_max_port=%d\n", s.pasvMin, s.pasvMax)
	}
	if s.tlsCert != nil {
		cert, key := filepath.Join(s.confDir, "cert.pem"), filepath.Join(s.confDir, "key.pem")
		if err := writeFile(cert, string(s.tlsCert), 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(key, string(s.tlsKey), 0o600); err != nil {
			return nil, err
		}
		text += strings.Join([]string{
			"ssl_enable=YES",
			"rsa_cert_file=" + cert,
			"rsa_private_key_file=" + key,
			"force_local_logins_ssl=NO",
			"force_local_data_ssl=NO",
			"require_ssl_reuse=NO",
			"ssl_ciphers=HIGH",
			"",
		}, "\n")
	}
	if err := writeFile(conf, text, 0o600); err != nil {
		return nil, err
	}
	return []string{conf}, nil
}

// proftpdConfig: the login is a uid-0 entry of proftpd's own AuthUserFile
// (RootLogin on), chrooted to its home Dir; MLSD via mod_facts.
func proftpdConfig(s *Server) ([]string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(s.Password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	passwd := filepath.Join(s.confDir, "proftpd.passwd")
	group := filepath.Join(s.confDir, "proftpd.group")
	if err := writeFile(passwd, fmt.Sprintf("%s:%s:0:0::%s:/bin/sh\n", s.User, hash, s.Dir), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(group, "root:x:0:\n", 0o644); err != nil {
		return nil, err
	}
	conf := filepath.Join(s.confDir, "proftpd.conf")
	text := strings.Join([]string{
		`ServerName "backupsync test"`,
		"ServerType standalone",
		"DefaultServer on",
		"SocketBindTight on",
		"DefaultAddress " + s.Host,
		"Port " + strconv.Itoa(s.Port),
		"UseIPv6 off",
		"PidFile " + filepath.Join(s.confDir, "proftpd.pid"),
		"ScoreboardFile " + filepath.Join(s.confDir, "proftpd.scoreboard"),
		"SystemLog " + filepath.Join(s.confDir, "proftpd.log"),
		"TransferLog none",
		"WtmpLog off",
		"DelayEngine off",
		"UseReverseDNS off",
		"User root",
		"Group root",
		"AuthOrder mod_auth_file.c",
		"AuthUserFile " + passwd,
		"AuthGroupFile " + group,
		"AuthPAM off",
		"RootLogin on",
		"RequireValidShell off",
		"DefaultRoot ~",
		"AllowOverwrite on",
		"AllowStoreRestart on",
		"AllowRetrieveRestart on",
		"Umask 022 022",
		"MaxInstances 500",
		"TimeoutIdle 600",
		"TimeoutNoTransfer 600",
		"",
	}, "\n")
	if err := writeFile(conf, text, 0o600); err != nil {
		return nil, err
	}
	return []string{"-n", "-q", "-c", conf}, nil
}

// pureIDBase is where the pure-ftpd user namespace maps its ids other than
// the login's: far above any id in use on the machine.
const pureIDBase = 1 << 24

// pureConfig: a puredb virtual user with the system user's uid, chrooted to
// Dir. pure-ftpd refuses uid 0 logins, so the server runs in a user namespace
// in which that uid is root outside: the session owns root's files. The
// namespace's own root (which pure-ftpd needs to bind, chroot and switch
// users) maps to an unused id range.
func pureConfig(s *Server, attr *syscall.SysProcAttr) ([]string, error) {
	pw, err := findTool(KindPureFTPd, "pure-pw")
	if err != nil {
		return nil, err
	}
	passwd := filepath.Join(s.confDir, "pureftpd.passwd")
	pdb := filepath.Join(s.confDir, "pureftpd.pdb")
	// Our own passwd line with a cheap bcrypt hash: pure-pw's default
	// argon2 parameters cost seconds per login.
	hash, err := bcrypt.GenerateFromPassword([]byte(s.Password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	line := fmt.Sprintf("%s:%s:%d:%d::%s/./::::::::::::\n", s.User, hash, userUID, userGID, s.Dir)
	if err := writeFile(passwd, line, 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(pw, "mkdb", pdb, "-f", passwd).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pure-pw mkdb: %v: %s", err, bytes.TrimSpace(out))
	}
	attr.Cloneflags = syscall.CLONE_NEWUSER
	attr.UidMappings = idMap(userUID)
	attr.GidMappings = idMap(userGID)
	attr.GidMappingsEnableSetgroups = true
	attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	return []string{
		"-S", s.Host + "," + strconv.Itoa(s.Port), // bind address and port
		"-4",                  // IPv4 only
		"-l", "puredb:" + pdb, // virtual users only
		"-E",         // no anonymous
		"-A",         // chroot everyone
		"-H",         // no reverse DNS
		"-P", s.Host, // passive address
		"-p", "40000:60000", // passive ports
		"-c", "500", "-C", "500", // clients, clients per IP
		"-I", "600", // idle timeout (minutes)
		"-U", "022:022", // umask
		"-u", "1", // minimum uid
	}, nil
}

// idMap maps inside id login to outside 0 and every other inside id below
// 65536 to pureIDBase+id.
func idMap(login int) []syscall.SysProcIDMap {
	m := []syscall.SysProcIDMap{{ContainerID: login, HostID: 0, Size: 1}}
	if login > 0 {
		m = append(m, syscall.SysProcIDMap{ContainerID: 0, HostID: pureIDBase, Size: login})
	}
	m = append(m, syscall.SysProcIDMap{ContainerID: login + 1, HostID: pureIDBase + login + 1, Size: 65536 - login - 1})
	return m
}
