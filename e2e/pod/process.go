// Package pod runs the programs of one pod (kv-emulator standing in for Azure,
// secret-proxy, orderapp) as local processes, the way the demo and the
// end-to-end tests need them: started with a chosen environment, their output
// kept and searchable, and always stopped, children included, even when the
// runner itself dies.
package pod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one running program.
type Process struct {
	Name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string
	seen  *sync.Cond

	done    chan struct{}
	exitErr error
}

// Spec says how to start a program.
type Spec struct {
	Name string   // short name used as the log prefix
	Path string   // the executable
	Args []string // arguments
	Env  []string // the whole environment (nil: only PATH and HOME)
	// Output, when set, receives every line the program prints, prefixed with Name.
	Output io.Writer
	// Stdout, when set, receives the program's standard output as it is,
	// instead of it being kept with the log lines: for a program whose
	// output is data (an export), not lines to search.
	Stdout io.Writer
}

// Start starts a program. Its stdout and stderr are collected line by line.
func Start(spec Spec) (*Process, error) {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	if cmd.Env == nil {
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	}
	// Pdeathsig: if the runner dies (killed by a test timeout, say), the kernel
	// sends the child SIGTERM, so nothing is left running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if spec.Stdout != nil {
		cmd.Stdout = spec.Stdout
	}
	p := &Process{Name: spec.Name, cmd: cmd, done: make(chan struct{})}
	p.seen = sync.NewCond(&p.mu)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if spec.Output != nil {
				fmt.Fprintf(spec.Output, "%-12s| %s\n", spec.Name, line)
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.seen.Broadcast()
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.mu.Lock()
		p.exitErr = err
		p.seen.Broadcast()
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is the process's exit error once Done is closed (nil: exit status 0).
func (p *Process) ExitErr() error {
	<-p.done
	return p.exitErr
}

// PeakRSS is the most resident memory the process used, in bytes, once it
// has exited (0 before).
func (p *Process) PeakRSS() int64 {
	select {
	case <-p.done:
	default:
		return 0
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10 // kilobytes on Linux
	}
	return 0
}

// Output returns everything the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// WaitFor waits until the process prints a line for which match is true, and
// returns that line. It fails when the process exits first or ctx ends.
func (p *Process) WaitFor(ctx context.Context, match func(string) bool) (string, error) {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.seen.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for next := 0; ; {
		for ; next < len(p.lines); next++ {
			if match(p.lines[next]) {
				return p.lines[next], nil
			}
		}
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited (%v) before printing the line waited for", p.Name, p.exitErr)
		default:
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("waiting for %s: %w", p.Name, ctx.Err())
		}
		p.seen.Wait()
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits up to grace for the exit, then kills. It
// returns the exit error (nil for a clean exit 0).
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.Join(fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.Name, grace), p.exitErr)
	}
}

// StartReady starts a server program and waits until readyURL answers 200
// (the program's /readyz). When it exits first, or ctx ends, it is stopped and
// the error carries the end of what it printed.
func StartReady(ctx context.Context, spec Spec, readyURL string) (*Process, error) {
	p, err := Start(spec)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.Done(): // no use waiting for a program that is gone
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := WaitHTTP(ctx, readyURL); err != nil {
		p.Stop(10 * time.Second)
		return nil, fmt.Errorf("%s not ready (exit: %v): %w\n%s", spec.Name, p.ExitErr(), err, Tail(p.Output(), 40))
	}
	return p, nil
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Run starts a one-shot program and waits for it to end. When ctx ends first,
// the program is stopped and ctx's error returned. The error of a failed run
// carries what the program printed.
func Run(ctx context.Context, spec Spec) error {
	p, err := Start(spec)
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		p.Stop(10 * time.Second)
		return fmt.Errorf("%s did not finish: %w\n%s", spec.Name, ctx.Err(), p.Output())
	}
	if err := p.ExitErr(); err != nil {
		return fmt.Errorf("%s: %w\n%s", spec.Name, err, p.Output())
	}
	return nil
}
