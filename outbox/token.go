package outbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/outboxd/outboxd/outbox/internal/dbsqlc"
)

// TokenPrefix starts every organization API token.
const TokenPrefix = "obx_"

// Token is an organization-scoped API token. Its secret value is never stored:
// only a digest, and Prefix to recognise it.
type Token struct {
	ID             string     `json:"id"`
	OrganizationID string     `json:"organization_id"`
	Name           string     `json:"name,omitempty"`
	Prefix         string     `json:"prefix"`
	CreatedAt      time.Time  `json:"created_at"`
	LastUsedAt     *time.Time `json:"last_used_at"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
}

func tokenFromRow(row *dbsqlc.OutboxApiToken) *Token {
	return &Token{
		ID: row.ID, OrganizationID: row.OrganizationID, Name: row.Name, Prefix: row.Prefix,
		CreatedAt: row.CreatedAt, LastUsedAt: row.LastUsedAt, RevokedAt: row.RevokedAt,
	}
}

// TokenCreateParams describe a new token.
type TokenCreateParams struct {
	// OrganizationID is the only organization the token can see. Required.
	OrganizationID string
	// Name says what the token is for. Optional.
	Name string
}

// TokenCreateResult is a new token and its value, which is shown only once.
type TokenCreateResult struct {
	*Token
	Secret string
}

// MarshalJSON includes the token's value as "token".
func (r *TokenCreateResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		*Token
		Value string `json:"token"`
	}{r.Token, r.Secret})
}

func tokenDigest(token string) []byte {
	digest := sha256.Sum256([]byte(token))
	return digest[:]
}

// TokenCreate makes an organization token.
func (s *Store) TokenCreate(ctx context.Context, params *TokenCreateParams) (*TokenCreateResult, error) {
	if strings.TrimSpace(params.OrganizationID) == "" {
		return nil, invalid("organization_id", "required: a token sees one organization")
	}
	if err := checkID("organization_id", params.OrganizationID, "api_tokens_organization_id_length"); err != nil {
		return nil, err
	}
	if err := checkText("name", params.Name, 200, "api_tokens_name_length"); err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	row, err := s.queries.TokenInsert(ctx, s.on(s.db), &dbsqlc.TokenInsertParams{
		OrganizationID: params.OrganizationID,
		Name:           params.Name,
		Prefix:         secret[:len(TokenPrefix)+6],
		Digest:         tokenDigest(secret),
	})
	if err != nil {
		return nil, translateError("create token", err)
	}
	return &TokenCreateResult{Token: tokenFromRow(row), Secret: secret}, nil
}

// TokenAuthenticate returns the unrevoked token with this value, or ErrNotFound.
// The lookup is by digest through a unique index, so it reveals nothing about
// other tokens and takes the same time whichever bytes differ.
func (s *Store) TokenAuthenticate(ctx context.Context, token string) (*Token, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return nil, ErrNotFound
	}
	row, err := s.queries.TokenByDigest(ctx, s.on(s.db), tokenDigest(token))
	if err != nil {
		return nil, translateError("authenticate token", err)
	}
	return tokenFromRow(row), nil
}

// TokenListParams filter TokenList.
type TokenListParams struct {
	OrganizationID string
	IncludeRevoked bool
	After          string // continue after this token id
	Limit          int    // default 100, at most 1,000
}

// TokenList lists tokens in creation order.
func (s *Store) TokenList(ctx context.Context, params *TokenListParams) ([]*Token, error) {
	if params == nil {
		params = &TokenListParams{}
	}
	rows, err := s.queries.TokenList(ctx, s.on(s.db), &dbsqlc.TokenListParams{
		OrganizationID: nullable(params.OrganizationID),
		IncludeRevoked: params.IncludeRevoked,
		After:          params.After,
		Max:            int32(listLimit(params.Limit)), //nolint:gosec // bounded by listLimit
	})
	if err != nil {
		return nil, translateError("list tokens", err)
	}
	tokens := make([]*Token, len(rows))
	for i, row := range rows {
		tokens[i] = tokenFromRow(row)
	}
	return tokens, nil
}

// TokenRevoke revokes a token at once. Revoking a revoked token is a no-op; an
// unknown id is ErrNotFound.
func (s *Store) TokenRevoke(ctx context.Context, id string) error {
	n, err := s.queries.TokenRevoke(ctx, s.on(s.db), id)
	if err != nil {
		return translateError("revoke token", err)
	}
	if n == 0 {
		found, err := s.queries.TokenExists(ctx, s.on(s.db), id)
		if err != nil {
			return translateError("revoke token", err)
		}
		if !found {
			return ErrNotFound
		}
	}
	return nil
}
