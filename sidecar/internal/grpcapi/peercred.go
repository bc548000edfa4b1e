package grpcapi

import (
	"context"
	"errors"
	"net"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
)

// peerInfo is the AuthInfo of a connection: on the unix socket it carries the
// peer's uid and pid from SO_PEERCRED, which the kernel fills in at connect
// time and the peer cannot forge.
type peerInfo struct {
	credentials.CommonAuthInfo
	Unix    bool
	HasCred bool
	UID     int
	PID     int
}

// AuthType names this AuthInfo.
func (peerInfo) AuthType() string { return "peercred" }

// peerCredentials returns transport credentials that add no encryption (the
// API is local only: loopback or a unix socket) and record the peer's
// credentials on unix-socket connections.
func peerCredentials() credentials.TransportCredentials { return peerCreds{} }

type peerCreds struct{}

func (peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peer credentials are server-side only")
}

func (peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	info := peerInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}
	under := conn
	// A bounded listener (connlimit) wraps the connection; the credentials
	// belong to the socket underneath.
	for {
		w, ok := under.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		under = w.NetConn()
	}
	uc, ok := under.(*net.UnixConn)
	if !ok {
		return conn, info, nil
	}
	info.Unix = true
	raw, err := uc.SyscallConn()
	if err != nil {
		return conn, info, nil
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err == nil && cerr == nil {
		info.HasCred, info.UID, info.PID = true, int(cred.Uid), int(cred.Pid)
	}
	return conn, info, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}

func (p peerCreds) Clone() credentials.TransportCredentials { return p }

func (peerCreds) OverrideServerName(string) error { return nil }
