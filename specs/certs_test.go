package specs_test

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
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// devCert is a self-signed certificate for 127.0.0.1, made for one spec:
// a server's certificate and, as a pool, the authority clients must trust.
type devCert struct {
	Cert              tls.Certificate
	Pool              *x509.CertPool
	CertPEM           []byte
	CertFile, KeyFile string // written to a temporary directory
}

func newDevCert() *devCert {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{Organization: []string{"natter specs"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())

	d := &devCert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	d.Cert, err = tls.X509KeyPair(d.CertPEM, keyPEM)
	Expect(err).NotTo(HaveOccurred())
	d.Pool = x509.NewCertPool()
	Expect(d.Pool.AppendCertsFromPEM(d.CertPEM)).To(BeTrue())

	dir := GinkgoT().TempDir()
	d.CertFile, d.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	Expect(os.WriteFile(d.CertFile, d.CertPEM, 0o600)).To(Succeed())
	Expect(os.WriteFile(d.KeyFile, keyPEM, 0o600)).To(Succeed())
	return d
}

// ServerConfig is the TLS configuration of a server using the certificate.
func (d *devCert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{d.Cert}, MinVersion: tls.VersionTLS12}
}
