package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/wsedge/wsedge/edge"

	"github.com/wsedge/wsedge/edge/cluster"
	"github.com/wsedge/wsedge/internal/testkit"
)

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// twoNodesSend checks that a client send crosses the bus of c's two nodes.
func twoNodesSend(c *testCluster) {
	alice := c.dial(0, "alice")
	bob := c.dial(1, "bob")
	alice.send(`{"type":"send","to":"bob","data":"hi","id":1}`)
	bob.expect(`{"type":"message","from":"alice","data":"hi"}`)
	alice.expect(`{"type":"ack","id":1}`)
}

// An nkey seed file authenticates the bus against a server that requires it;
// a node without it never connects.
func TestClusterNkeyAuth(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := writeFile(t, "node.nk", seed)
	ns := startNATSWith(t, &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Nkeys: []*natsserver.NkeyUser{{Nkey: pub}}})
	c := startClusterOn(t, ns, 2, func(cc *cluster.Config) { cc.NkeyFile = seedFile })
	twoNodesSend(c)

	anon := start(t, Config{Cluster: &cluster.Config{URLs: []string{ns.ClientURL()}, NodeID: "anon", ReconnectMax: 50 * time.Millisecond}}, nil)
	t.Cleanup(anon.app.Close)
	testkit.Eventually(t, 5*time.Second, "the refused node says why", func() bool {
		return strings.Contains(strings.ToLower(anon.log.String()), "authorization violation")
	})
	if anon.app.cluster.Ready() == nil {
		t.Fatal("a node without the nkey connected")
	}
	if !strings.Contains(anon.log.String(), "NATS without credentials") {
		t.Fatal("no warning for a bus without credentials")
	}
}

// A credentials file (user JWT and seed, as nsc writes it) authenticates
// the bus against a server in operator mode.
func TestClusterCredsAuth(t *testing.T) {
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	useed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &natsserver.MemAccResolver{}
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	ns := startNATSWith(t, &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: resolver})
	credsFile := writeFile(t, "node.creds", creds)
	c := startClusterOn(t, ns, 2, func(cc *cluster.Config) { cc.CredsFile = credsFile })
	twoNodesSend(c)

	// A file that is not credentials stops the start.
	_, _, err = NewServer(testEdgeConfig(), Config{Cluster: &cluster.Config{URLs: []string{ns.ClientURL()}, CredsFile: writeFile(t, "bad.creds", []byte("nope"))}})
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("bad credentials file: %v", err)
	}
}

// -nats-ca turns TLS on and verifies the server with the given roots.
func TestClusterTLS(t *testing.T) {
	caPEM, serverCert := testCertificates(t)
	ns := startNATSWith(t, &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLS: true, TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}})
	caFile := writeFile(t, "ca.pem", caPEM)
	c := startClusterOn(t, ns, 2, func(cc *cluster.Config) { cc.CAFile = caFile })
	twoNodesSend(c)

	// Without those roots the server's certificate is not trusted.
	other := start(t, Config{Cluster: &cluster.Config{URLs: []string{ns.ClientURL()}, NodeID: "other", ReconnectMax: 50 * time.Millisecond}}, nil)
	t.Cleanup(other.app.Close)
	testkit.Eventually(t, 5*time.Second, "the untrusting node says why", func() bool {
		return strings.Contains(other.log.String(), "certificate")
	})
	if other.app.cluster.Ready() == nil {
		t.Fatal("a node without the CA connected")
	}
}

// testEdgeConfig is a minimal edge config for NewServer calls expected to fail.
func testEdgeConfig() edge.Config {
	return edge.Config{Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"}
}

// testCertificates makes a CA and a server certificate for 127.0.0.1 it signs.
func testCertificates(t testing.TB) (caPEM []byte, server tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wsedge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
}
