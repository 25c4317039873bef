#!/usr/bin/env bash
# Several domains, one SCIM tenant (docs/active-directory.md, "Several forests
# into one tenant"): two Samba AD forests (FOREST1.TEST, FOREST2.TEST, each on
# its own 127.0.0.x) and the OpenLDAP domain, each with its own cluster of
# three agents (its own cluster name) and its own target.external_id_prefix,
# all writing to one SCIM server. Each forest has three users of its own and a
# user "shared" (the same sAMAccountName in both). Forest 1 exports first;
# then forest 2 and OpenLDAP. Every non-colliding user arrives with its
# domain's prefix; forest 2's "shared" meets forest 1's by userName and is
# refused: recorded as failed on forest 2's agent (GET /v1/failed, status
# sync.failed), the error naming both objects, and forest 1's "shared" is
# left exactly as it was.
source "$(dirname "$0")/../fixtures/ad_sync.sh"

# forest_seed PREFIX DISPLAY: OU=People and OU=Groups in the current DC,
# users PREFIX00001..3 and CN=shared (displayName DISPLAY).
forest_seed() {
	samba_seed 0 0 || fail "samba_seed"
	{
		for i in 1 2 3; do
			printf 'dn: CN=%s%05d,%s\nobjectClass: user\nsAMAccountName: %s%05d\n' "$1" $i "$SAMBA_PEOPLE" "$1" $i
			printf 'givenName: %s\nsn: User%d\ndisplayName: %s user %d\nuserAccountControl: 512\n\n' "$1" $i "$1" $i
		done
		printf 'dn: CN=shared,%s\nobjectClass: user\nsAMAccountName: shared\n' "$SAMBA_PEOPLE"
		printf 'givenName: Shared\nsn: %s\ndisplayName: %s\nuserAccountControl: 512\n' "$2" "$2"
	} | samba_ldapadd >/dev/null || fail "seed $SAMBA_REALM"
}

samba_start auto FOREST1.TEST
forest_seed alpha "Shared of forest 1"
F1=$SAMBA_INSTANCE
g1=$(ad_guid "CN=shared,$SAMBA_PEOPLE") || fail "guid of forest 1's shared"
samba_start auto FOREST2.TEST
forest_seed beta "Shared of forest 2"
F2=$SAMBA_INSTANCE
g2=$(ad_guid "CN=shared,$SAMBA_PEOPLE") || fail "guid of forest 2's shared"
dn2="CN=shared,$SAMBA_PEOPLE"
slapd_start 3 1
scim_start

# one three-node cluster per domain: agents 1-3 forest 1, 4-6 forest 2, 7-9
# OpenLDAP
for i in $(seq 9); do agent_ports $i; done
cluster() { local i out=; for i in "$@"; do out+="${out:+, }\"$i@${AGENT_RAFT[$i]}\""; done; echo "[$out]"; }
F1_NODES=(1 2 3) F2_NODES=(4 5 6) LDAP_NODES=(7 8 9)
samba_use "$F1"
for i in "${F1_NODES[@]}"; do CLUSTER_NAME=forest1 TARGET_EXTERNAL_ID_PREFIX=f1: ad_agent_config $i "$(cluster "${F1_NODES[@]}")"; done
samba_use "$F2"
for i in "${F2_NODES[@]}"; do CLUSTER_NAME=forest2 TARGET_EXTERNAL_ID_PREFIX=f2: ad_agent_config $i "$(cluster "${F2_NODES[@]}")"; done
for i in "${LDAP_NODES[@]}"; do CLUSTER_NAME=ldap TARGET_EXTERNAL_ID_PREFIX=ldap: sync_agent_config $i "$(cluster "${LDAP_NODES[@]}")"; done

users_with() { scim_ctl GET store | json_get "j.Users.filter(u => (u.externalId || '').startsWith('$1')).map(u => u.userName).sort().join()"; }

for i in "${F1_NODES[@]}"; do agent_start $i; done
wait_until 20 ready_leader "${F1_NODES[@]}" >/dev/null || fail "forest 1: no leader"
wait_until 30 eval '[ "$(users_with f1:)" = "alpha00001,alpha00002,alpha00003,shared" ]' ||
	fail "forest 1: users with f1: are [$(users_with f1:)]: $(agent_status "$(ready_leader "${F1_NODES[@]}")")"
[ "$(ad_scim_user "f1:$g1" 'u.displayName')" = "Shared of forest 1" ] || fail "forest 1's shared: $(ad_scim_user "f1:$g1" 'JSON.stringify(u)')"
before=$(ad_scim_user "f1:$g1" 'JSON.stringify(u)')
pass "forest 1 (cluster forest1, prefix f1:): its 4 users exported, externalId f1:<objectGUID>"

for i in "${F2_NODES[@]}" "${LDAP_NODES[@]}"; do agent_start $i; done
wait_until 20 eval 'ready_leader "${F2_NODES[@]}" && ready_leader "${LDAP_NODES[@]}"' >/dev/null || fail "forest 2 / OpenLDAP: no leader"
F2L=$(ready_leader "${F2_NODES[@]}")
wait_until 40 eval '[ "$(users_with f2:)" = "beta00001,beta00002,beta00003" ] &&
	[ "$(users_with ldap:)" = "user00001,user00002,user00003" ] &&
	[ "$(json_eval "$(agent_status "$F2L")" "j.sync.failed")" = 1 ]' ||
	fail "forest 2 / OpenLDAP: f2: [$(users_with f2:)], ldap: [$(users_with ldap:)], forest 2: $(agent_status "$F2L")"
[ "$(scim_count Users)" = 10 ] || fail "$(scim_count Users) users in the target, want 4 (forest 1) + 3 (forest 2) + 3 (OpenLDAP)"
[ "$(scim_ctl GET store | json_get "j.Groups.map(g => g.externalId.split(':')[0] + ' ' + g.displayName).join()")" = "ldap group0001" ] ||
	fail "groups: $(scim_ctl GET store | json_get 'JSON.stringify(j.Groups)')"
pass "forest 2 (prefix f2:) and OpenLDAP (prefix ldap:): every non-colliding user arrived with its domain's prefix"

F2L=$(ready_leader "${F2_NODES[@]}") || fail "forest 2: no leader"
failed=$(curl -sf --max-time 5 "http://${AGENT_CTL[$F2L]}/v1/failed") || fail "GET /v1/failed on forest 2's leader $F2L"
id1=$(json_eval "$before" 'j.id')
entry() { json_eval "$failed" "(() => { const f = j.failed.find(x => x.anchor === '$g2'); return $1; })()"; }
[ "$(json_eval "$failed" 'j.failed.length')" = 1 ] || fail "failed objects on forest 2: $failed"
[ "$(entry 'f.dn')" = "$dn2" ] || fail "the failed entry's DN: $failed"
err=$(entry 'f.error')
for want in "f2:$g2" "id $id1" "\"f1:$g1\"" 'userName "shared"' 'external_id_prefix "f2:"'; do
	[[ $err == *"$want"* ]] || fail "the error does not name $want: $err"
done
for i in "${F2_NODES[@]}"; do agent_logs $i; done | grep -q "the target refused an object.*$dn2" || fail "forest 2's logs have no refusal naming $dn2"
pass "forest 2's shared ($g2) refused and recorded as failed: $err"

after=$(ad_scim_user "f1:$g1" 'JSON.stringify(u)')
[ "$after" = "$before" ] || fail "forest 1's shared changed: before $before, after $after"
writes=$(scim_ctl GET audit | json_get "j.filter(a => a.path.includes('$id1') && a.method !== 'GET').length")
[ "$writes" = 0 ] || fail "$writes writes reached forest 1's shared ($id1) after its create"
# every node of forest 1 reports the cluster-wide figures: nothing failed
for i in "${F1_NODES[@]}"; do
	[ "$(json_eval "$(agent_status $i)" 'j.sync.failed + j.sync.retrying')" = 0 ] || fail "forest 1, node $i: $(agent_status $i)"
done
pass "forest 1's shared is unchanged in the target (id $id1, its own attributes, no write to it)"
