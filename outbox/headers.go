package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// A subscription's custom request headers often carry the receiver's
// credentials, so their values are sealed like signing secrets and never shown:
// reads return only their names (Subscription.HeaderNames), and only a delivery
// opens them. The values of one subscription are one ciphertext, of their JSON
// object, bound to the subscription.

// headersAAD binds sealed header values to their subscription, and keeps them
// apart from its signing secrets (sealed with the bare id, which holds no NUL).
func headersAAD(subscriptionID string) []byte {
	return []byte(subscriptionID + "\x00headers")
}

// headerNames lists the names of headers in byte order.
func headerNames(headers map[string]string) []string {
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// headersSetTx replaces a subscription's custom headers, sealing their values;
// none needs no key.
func (s *Store) headersSetTx(ctx context.Context, exec dbsqlc.DBTX, subscriptionID string, headers map[string]string) error {
	params := &dbsqlc.SubscriptionHeadersSetParams{ID: subscriptionID, HeaderNames: headerNames(headers)}
	if len(headers) > 0 {
		if s.keyring == nil {
			return ErrNoEncryptionKey
		}
		plaintext, err := json.Marshal(headers)
		if err != nil {
			return fmt.Errorf("encode headers: %w", err)
		}
		keyID, sealed, err := s.keyring.Seal(plaintext, headersAAD(subscriptionID))
		if err != nil {
			return err
		}
		params.KeyID, params.Ciphertext = &keyID, sealed
	}
	return translateError("store headers", s.queries.SubscriptionHeadersSet(ctx, exec, params))
}

// plaintextHeaders reports whether a subscription's headers column holds values
// in plaintext: written before migration 7, or by an older daemon during an
// upgrade. Sealing empties it, so such values are newer than any ciphertext.
func plaintextHeaders(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "{}"
}

// openHeaders returns a subscription's custom headers: in plaintext if the
// headers column holds any, else sealed.
func (s *Store) openHeaders(subscriptionID string, plaintext json.RawMessage, keyID *string, sealed []byte) (map[string]string, error) {
	if !plaintextHeaders(plaintext) {
		if keyID == nil {
			return nil, nil
		}
		if s.keyring == nil {
			return nil, ErrNoEncryptionKey
		}
		opened, err := s.keyring.Open(*keyID, sealed, headersAAD(subscriptionID))
		if err != nil {
			return nil, fmt.Errorf("headers of subscription %s: %w", subscriptionID, err)
		}
		plaintext = opened
	}
	var headers map[string]string
	if err := json.Unmarshal(plaintext, &headers); err != nil {
		// The error would quote the text: never show it.
		return nil, fmt.Errorf("headers of subscription %s are not a JSON object of strings", subscriptionID)
	}
	return headers, nil
}

// rowHeaderNames lists a subscription's custom header names, from its plaintext
// values when it has any (an older daemon writes no names).
func rowHeaderNames(row *dbsqlc.OutboxSubscription) []string {
	if plaintextHeaders(row.Headers) {
		var headers map[string]json.RawMessage
		if err := json.Unmarshal(row.Headers, &headers); err == nil {
			names := make([]string, 0, len(headers))
			for name := range headers {
				names = append(names, name)
			}
			slices.Sort(names)
			return names
		}
	}
	if row.HeaderNames == nil {
		return []string{}
	}
	return row.HeaderNames
}

// HeadersCounts counts subscriptions with custom header values, by how they
// are stored.
type HeadersCounts struct {
	Sealed int64 `json:"sealed"`
	// Plaintext were written before migration 7 and not sealed since.
	Plaintext int64 `json:"plaintext"`
}

// HeadersCount counts subscriptions with custom header values, sealed and still
// in plaintext.
func (s *Store) HeadersCount(ctx context.Context) (*HeadersCounts, error) {
	rows, err := s.queries.HeadersCountByKey(ctx, s.on(s.db))
	if err != nil {
		return nil, translateError("count headers", err)
	}
	counts := &HeadersCounts{}
	for _, row := range rows {
		if row.KeyID == "" {
			counts.Plaintext += row.Subscriptions
		} else {
			counts.Sealed += row.Subscriptions
		}
	}
	return counts, nil
}

// HeadersSealPlaintext seals the custom header values that migration 7 left in
// plaintext (SQL cannot seal them: the key is not in the database), batch by
// batch in short transactions, and returns how many subscriptions it sealed.
// `outboxd migrate up`, `outboxd keys rotate` and every daemon's start run it.
func (s *Store) HeadersSealPlaintext(ctx context.Context) (int64, error) {
	if s.keyring == nil {
		return 0, ErrNoEncryptionKey
	}
	var sealed int64
	for {
		var n int
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			exec := s.on(tx)
			rows, err := s.queries.HeadersPlaintextToSeal(ctx, exec, ResealBatchDefault)
			if err != nil {
				return translateError("find plaintext headers", err)
			}
			for _, row := range rows {
				headers, err := s.openHeaders(row.ID, row.Headers, nil, nil)
				if err != nil {
					return err
				}
				if err := s.headersSetTx(ctx, exec, row.ID, headers); err != nil {
					return err
				}
			}
			n = len(rows)
			return nil
		})
		if err != nil {
			return sealed, err
		}
		if n == 0 {
			return sealed, nil
		}
		sealed += int64(n)
	}
}

// HeadersUnsealForDowngrade writes every subscription's sealed custom header
// values back in plaintext, as versions before migration 7 keep them. Only a
// downgrade below migration 7 (migrations.Migrator.Down) uses it; a daemon of
// this version seals them again when it starts.
func (s *Store) HeadersUnsealForDowngrade(ctx context.Context) (int64, error) {
	if s.keyring == nil {
		return 0, errors.New("header values are encrypted and a downgrade must decrypt them: " + ErrNoEncryptionKey.Error())
	}
	var unsealed int64
	for {
		var n int
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			exec := s.on(tx)
			rows, err := s.queries.HeadersToUnseal(ctx, exec, ResealBatchDefault)
			if err != nil {
				return translateError("find sealed headers", err)
			}
			for _, row := range rows {
				headers, err := s.openHeaders(row.ID, row.Headers, row.HeadersKeyID, row.HeadersCiphertext)
				if err != nil {
					return fmt.Errorf("%w (add its key to OUTBOXD_ENCRYPTION_KEYS_OLD)", err)
				}
				plaintext, err := json.Marshal(headers)
				if err != nil {
					return fmt.Errorf("encode headers: %w", err)
				}
				if err := s.queries.HeadersUnseal(ctx, exec, &dbsqlc.HeadersUnsealParams{ID: row.ID, Headers: plaintext}); err != nil {
					return translateError("unseal headers", err)
				}
			}
			n = len(rows)
			return nil
		})
		if err != nil {
			return unsealed, err
		}
		if n == 0 {
			return unsealed, nil
		}
		unsealed += int64(n)
	}
}

// headersResealBatch moves one batch of header values sealed under an older key,
// or still in plaintext, to the current key; it returns how many it moved.
func (s *Store) headersResealBatch(ctx context.Context, exec dbsqlc.DBTX, current string, batch int) (int, error) {
	rows, err := s.queries.HeadersToReseal(ctx, exec, &dbsqlc.HeadersToResealParams{CurrentKeyID: current, Max: int32(min(batch, 10_000))}) //nolint:gosec // bounded
	if err != nil {
		return 0, translateError("find headers to reseal", err)
	}
	for _, row := range rows {
		headers, err := s.openHeaders(row.ID, row.Headers, row.HeadersKeyID, row.HeadersCiphertext)
		if err != nil {
			return 0, fmt.Errorf("%w (add its key to OUTBOXD_ENCRYPTION_KEYS_OLD)", err)
		}
		if err := s.headersSetTx(ctx, exec, row.ID, headers); err != nil {
			return 0, err
		}
	}
	return len(rows), nil
}
