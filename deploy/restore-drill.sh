#!/usr/bin/env bash
# Restore drill: restore a dump into an empty database and count what came back, so a lab knows
# its backups restore before it needs them (docs/operations.md, "Backups").
#   deploy/restore-drill.sh DUMP_FILE EMPTY_DATABASE_URL
# In the compose stack:  docker compose exec backup sh -c \
#   'createdb drill && pg_restore --no-owner -d drill /backups/<file>.dump'
# then compare the counts below with the live database's.
set -euo pipefail
dump="$1"
target="$2"
pg_restore --no-owner --no-privileges --exit-on-error --dbname="$target" "$dump"
psql "$target" --no-align --tuples-only --field-separator=' ' --command "
  SELECT 'participations', count(*) FROM participants_participation
  UNION ALL SELECT 'messages', count(*) FROM writing_message
  UNION ALL SELECT 'document_versions', count(*) FROM writing_documentversion
  UNION ALL SELECT 'ratings', count(*) FROM feedback_rating"
