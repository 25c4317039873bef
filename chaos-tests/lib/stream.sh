#!/usr/bin/env bash
# chaos-tests/lib/stream.sh -- the suite's own change stream, used when
# chaos-tests/workload.sh is not there: seeded (CHAOS_SEED), CHAOS_RATE
# changes a second into slapd through one ldapmodify: 70 % a givenName
# modify of one of the CHAOS_USERS seeded users, 20 % a new user,
# 10 % the delete of an earlier chaos user (new users are c<SEED>nNNNNN, so a second stream with another seed adds no one twice). Each change is one JSON line in
# CHAOS_WORKLOAD_LOG. Env: SLAPD_URL SLAPD_ADMIN_DN SLAPD_PW_FILE SLAPD_BASE.
set -u
RANDOM=${CHAOS_SEED:-1}
sleep_s=$(awk -v r="${CHAOS_RATE:-10}" 'BEGIN{printf "%.3f", 1/r}')
exec ldapmodify -x -c -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" < <(
	i=0 added=() next=1
	while :; do
		i=$((i + 1)) p=$((RANDOM % 100))
		if [ "$p" -lt 70 ] || { [ "$p" -ge 90 ] && [ ${#added[@]} -eq 0 ]; }; then
			u=$(printf 'user%05d' $((RANDOM % CHAOS_USERS + 1)))
			printf 'dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: givenName\ngivenName: Chaos%d\n\n' "$u" "$SLAPD_BASE" "$i"
			op="{\"op\":\"modify\",\"uid\":\"$u\",\"givenName\":\"Chaos$i\"}"
		elif [ "$p" -lt 90 ]; then
			u=$(printf 'c%sn%05d' "${CHAOS_SEED:-1}" "$next"); next=$((next + 1))
			printf 'dn: uid=%s,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: Stream\ngivenName: New%d\nmail: %s@example.com\n\n' \
				"$u" "$SLAPD_BASE" "$u" "$u" "$i" "$u"
			added+=("$u")
			op="{\"op\":\"add\",\"uid\":\"$u\"}"
		else
			k=$((RANDOM % ${#added[@]}))
			u=${added[$k]}
			added=("${added[@]:0:$k}" "${added[@]:$((k + 1))}")
			printf 'dn: uid=%s,ou=people,%s\nchangetype: delete\n\n' "$u" "$SLAPD_BASE"
			op="{\"op\":\"delete\",\"uid\":\"$u\"}"
		fi
		printf '{"n":%d,"time_ms":%s,%s\n' "$i" "${EPOCHREALTIME/./}" "${op#\{}" | sed 's/"time_ms":\([0-9]*\)[0-9]\{3\},/"time_ms":\1,/' >>"$CHAOS_WORKLOAD_LOG"
		sleep "$sleep_s"
	done)
