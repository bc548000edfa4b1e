package repocheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stub writes an executable shell script named name into dir.
func stub(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// startSleeper starts a process that stands in for a daemon; it is killed at
// the end of the test if still running.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return cmd
}

// alive reports whether pid still runs (and is not a zombie waiting for us).
func alive(pid int) bool {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// TestInstallStopsOnlyWhatItStarted runs install-test-deps.sh as root with
// apt-get and the PostgreSQL tools replaced by stubs: the install creates a
// new cluster and starts an "etcd" service (a process whose pid is in the
// package's pidfile), while an older cluster and another "etcd" (another
// checkout's test server) are running. Only the new cluster and the
// service's own process are stopped; pkill is never used; the install ran
// under a policy-rc.d that denies starts, removed afterwards.
func TestInstallStopsOnlyWhatItStarted(t *testing.T) {
	script := filepath.Join(repoRoot(t), "tools", "scripts", "install-test-deps.sh")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "calls.log")
	state := filepath.Join(dir, "clusters")
	policy := filepath.Join(dir, "policy-rc.d")
	pidfile := filepath.Join(dir, "etcd.pid")
	if err := os.WriteFile(state, []byte("14 old 5432 online postgres /var/lib/postgresql/14/old /var/log/x.log\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	service := startSleeper(t) // what the package's postinst would have started
	other := startSleeper(t)   // an etcd this script did not start
	exe, err := os.Readlink("/proc/" + strconv.Itoa(service.Process.Pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}

	stub(t, bin, "id", `echo 0`)
	stub(t, bin, "apt-get", `echo "apt-get $*" >>`+log+`
if [ "$1" = install ]; then
	if [ -x `+policy+` ]; then `+policy+`; echo "policy-rc.d exit $?" >>`+log+`; else echo "no policy-rc.d" >>`+log+`; fi
	echo "15 main 5433 online postgres /var/lib/postgresql/15/main /var/log/y.log" >>`+state+`
	echo `+strconv.Itoa(service.Process.Pid)+` >`+pidfile+`
fi`)
	stub(t, bin, "pg_lsclusters", `cat `+state)
	stub(t, bin, "pg_ctlcluster", `echo "pg_ctlcluster $*" >>`+log)
	stub(t, bin, "pkill", `echo "pkill $*" >>`+log)
	stub(t, bin, "killall", `echo "killall $*" >>`+log)
	stub(t, bin, "systemctl", `echo "systemctl $*" >>`+log)

	cmd := exec.CommandContext(t.Context(), "bash", script, "--require", "postgresql", "etcd")
	cmd.Env = append(os.Environ(),
		"PATH="+bin+":"+os.Getenv("PATH"),
		"POLICY_RC_D="+policy,
		"PG_INITDB_GLOB="+filepath.Join(dir, "no-postgresql", "*", "initdb"),
		"ETCD_BIN=etcd-not-installed-for-this-test",
		"ETCD_PIDFILE="+pidfile,
		"ETCD_EXE="+exe,
		"SYSTEMD_RUN_DIR="+filepath.Join(dir, "no-systemd"),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install-test-deps.sh: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	calls := string(raw)
	for _, want := range []string{
		"apt-get install -y -qq --no-install-recommends postgresql etcd-server\n",
		"policy-rc.d exit 101\n",
		"pg_ctlcluster 15 main stop\n",
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
	for _, bad := range []string{"pg_ctlcluster 14 old", "pkill", "killall", "systemctl"} {
		if strings.Contains(calls, bad) {
			t.Errorf("the script ran %q, which stops what it did not start:\n%s", bad, calls)
		}
	}
	if _, err := os.Stat(policy); !os.IsNotExist(err) {
		t.Errorf("policy-rc.d left in place after the install (stat: %v)", err)
	}
	// The service's process gets SIGTERM; wait for it to go (bounded).
	deadline := time.Now().Add(10 * time.Second)
	for alive(service.Process.Pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(service.Process.Pid) {
		t.Errorf("the service the install started (pid %d) still runs", service.Process.Pid)
	}
	if !alive(other.Process.Pid) {
		t.Errorf("the other etcd (pid %d), not started by the install, was stopped", other.Process.Pid)
	}
}

// TestInstallKeepsTheMachinesPolicy checks that an existing policy-rc.d is
// neither replaced nor removed, and that with every dependency present
// nothing is installed or stopped.
func TestInstallKeepsTheMachinesPolicy(t *testing.T) {
	script := filepath.Join(repoRoot(t), "tools", "scripts", "install-test-deps.sh")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "calls.log")
	policy := filepath.Join(dir, "policy-rc.d")
	const mine = "#!/bin/sh\n# the machine's own policy\nexit 0\n"
	if err := os.WriteFile(policy, []byte(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	stub(t, bin, "id", `echo 0`)
	stub(t, bin, "apt-get", `echo "apt-get $*" >>`+log)
	stub(t, bin, "pg_lsclusters", `true`)
	stub(t, bin, "pg_ctlcluster", `echo "pg_ctlcluster $*" >>`+log)
	initdb := filepath.Join(dir, "pg", "15", "bin", "initdb")
	for _, tc := range []struct {
		name        string
		haveInitdb  bool
		wantInstall bool
	}{
		{"missing: installs, keeps the policy", false, true},
		{"present: installs nothing", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(log)
			if tc.haveInitdb {
				if err := os.MkdirAll(filepath.Dir(initdb), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(initdb, nil, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.CommandContext(t.Context(), "bash", script, "postgresql")
			cmd.Env = append(os.Environ(),
				"PATH="+bin+":"+os.Getenv("PATH"),
				"POLICY_RC_D="+policy,
				"PG_INITDB_GLOB="+filepath.Join(dir, "pg", "*", "bin", "initdb"),
			)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("install-test-deps.sh: %v\n%s", err, out)
			}
			calls, _ := os.ReadFile(log)
			if got := strings.Contains(string(calls), "apt-get install"); got != tc.wantInstall {
				t.Errorf("apt-get install ran: %v, want %v\n%s", got, tc.wantInstall, calls)
			}
			if strings.Contains(string(calls), "pg_ctlcluster") {
				t.Errorf("a cluster was stopped with none created:\n%s", calls)
			}
			got, err := os.ReadFile(policy)
			if err != nil || string(got) != mine {
				t.Errorf("the machine's policy-rc.d changed: %q, %v", got, err)
			}
		})
	}
}
