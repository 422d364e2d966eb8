// Package secretbox owns encryption at rest of webhook signing secrets: AES-256-GCM
// under a key-encryption key from the operator (OUTBOXD_ENCRYPTION_KEY), with the
// key's id stored beside each ciphertext so the key can be rotated and older keys
// still read. Associated data binds a ciphertext to its row, so a sealed secret
// copied onto another subscription does not open.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a key-encryption key in bytes.
const KeySize = 32

// HowToMakeKey tells an operator how to create a key; errors about a missing key include it.
const HowToMakeKey = "set OUTBOXD_ENCRYPTION_KEY to 32 random bytes in base64, for example: export OUTBOXD_ENCRYPTION_KEY=$(openssl rand -base64 32)"

// ErrNoKey means no key-encryption key is configured.
var ErrNoKey = errors.New("no encryption key: " + HowToMakeKey)

// Key is one key-encryption key.
type Key struct {
	id   string
	aead cipher.AEAD
}

// ParseKey decodes a base64 (standard or URL alphabet, padded or not) key of KeySize bytes.
func ParseKey(encoded string) (*Key, error) {
	encoded = strings.TrimSpace(encoded)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(encoded); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.New("encryption key is not valid base64; " + HowToMakeKey)
	}
	return NewKey(raw)
}

// NewKey wraps raw key bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("encryption key must be %d bytes, not %d; %s", KeySize, len(raw), HowToMakeKey)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	// The id names the key without revealing it: a keyed hash of a fixed label.
	idMAC := hmac.New(sha256.New, raw)
	idMAC.Write([]byte("outboxd key id"))
	return &Key{id: hex.EncodeToString(idMAC.Sum(nil))[:16], aead: aead}, nil
}

// ID identifies the key; it is stored with every ciphertext the key seals.
func (k *Key) ID() string { return k.id }

// Keyring seals with its current key and opens with any key it holds.
type Keyring struct {
	current *Key
	byID    map[string]*Key
}

// NewKeyring returns a keyring that seals with current and can also open what the
// older keys sealed.
func NewKeyring(current *Key, older ...*Key) *Keyring {
	k := &Keyring{current: current, byID: map[string]*Key{current.id: current}}
	for _, o := range older {
		if _, ok := k.byID[o.id]; !ok {
			k.byID[o.id] = o
		}
	}
	return k
}

// CurrentKeyID is the id of the key Seal uses.
func (k *Keyring) CurrentKeyID() string { return k.current.id }

// Seal encrypts plaintext, bound to associatedData, and returns the key id and
// nonce||ciphertext.
func (k *Keyring) Seal(plaintext, associatedData []byte) (keyID string, sealed []byte, err error) {
	if k == nil {
		return "", nil, ErrNoKey
	}
	nonce := make([]byte, k.current.aead.NonceSize(), k.current.aead.NonceSize()+len(plaintext)+k.current.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("seal: %w", err)
	}
	return k.current.id, k.current.aead.Seal(nonce, nonce, plaintext, associatedData), nil
}

// Open decrypts what Seal returned.
func (k *Keyring) Open(keyID string, sealed, associatedData []byte) ([]byte, error) {
	if k == nil {
		return nil, ErrNoKey
	}
	key, ok := k.byID[keyID]
	if !ok {
		return nil, fmt.Errorf("secret was encrypted with key %s, which is not configured", keyID)
	}
	nonceSize := key.aead.NonceSize()
	if len(sealed) < nonceSize+key.aead.Overhead() {
		return nil, errors.New("open secret: ciphertext too short")
	}
	plaintext, err := key.aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], associatedData)
	if err != nil {
		return nil, errors.New("open secret: authentication failed (wrong key or tampered row)")
	}
	return plaintext, nil
}
