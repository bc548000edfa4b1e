// Package migrations holds the schema of the orders database as plain SQL files,
// one directory per dialect, embedded in the binary so that `orderapp migrate`
// needs nothing beside it. Files are named NNNN_description.sql and applied in
// name order; a file, once released, is never edited: a change is a new file.
package migrations

import "embed"

// FS holds sqlserver/*.sql, postgres/*.sql and sqlite/*.sql.
//
//go:embed sqlserver/*.sql postgres/*.sql sqlite/*.sql
var FS embed.FS
