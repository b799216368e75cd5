# tests/integration/reglib.sh - helpers of the registry (Glance v2) shell tests.
# Source after lib.sh:   . "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/reglib.sh"
#
#   requires_registry          exit 77 when this cairn has no --registry-listen
#   registry_start [ARGS...]   cairn_start --registry-listen 127.0.0.1:0 ARGS...;
#                              sets GLANCE_PORT and GLANCE_URL from the ready line
#   user_token USER            cairn user create (once) + cairn token create: the token
#   gl TOKEN ARGS...           the glance CLI (API v2) against this server (stdin closed)
#   osc TOKEN ARGS...          openstack --os-auth-type admin_token --os-endpoint URL/v2
#                              (stdin closed: both CLIs upload a non-tty stdin as data)
#   gfield TEXT NAME           a field of a glance CLI "| Property | Value |" table
#   wait_active TOKEN ID       polls (curl, up to 60 s) until the image is active;
#                              prints the last status
#   gapi TOKEN METHOD PATH [curl args]   curl to the Glance port; prints the body,
#                              the status code on the last line
#
# The admin token (CAIRN_ADMIN_TOKEN, read by `cairn serve`) is $ADMIN_TOKEN.
# HOME is a scratch dir: the glance CLI caches the schema there.
export CAIRN_ADMIN_TOKEN=cairn-test-admin-token-0123456789abcdef
ADMIN_TOKEN=$CAIRN_ADMIN_TOKEN
export HOME=$T/home
mkdir -p "$HOME"
unset OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME OS_CLOUD OS_TOKEN OS_IMAGE_URL OS_AUTH_TOKEN

requires_registry() {
	[ -n "${REGLIB_REF_URL:-}" ] && return 0
	local help
	help=$("$CAIRN_BIN" serve --help 2>&1)
	if [[ "$help" != *--registry-listen* ]]; then
		echo "SKIP: $CAIRN_TEST_NAME: this cairn has no --registry-listen (no image registry)"
		exit 77
	fi
}

registry_start() {
	if [ -n "${REGLIB_REF_URL:-}" ]; then # test-of-the-tests: a reference glance-api
		GLANCE_URL=$REGLIB_REF_URL
		GLANCE_PORT=${GLANCE_URL##*:}
		export GLANCE_PORT GLANCE_URL
		return 0
	fi
	cairn_start --registry-listen 127.0.0.1:0 "$@" || return 1
	GLANCE_PORT=$(grep -m1 -oE 'Glance http://[^ ,]+:[0-9]+' "$CAIRN_LOG" | sed 's/.*://')
	if [ -z "$GLANCE_PORT" ]; then
		fail "the ready line names no Glance endpoint: $(grep -m1 'cairn ready' "$CAIRN_LOG")"
		return 1
	fi
	GLANCE_URL=http://127.0.0.1:$GLANCE_PORT
	export GLANCE_PORT GLANCE_URL
	log "glance at $GLANCE_URL"
}

declare -A _REG_USERS=()
user_token() {
	local out
	if [ -n "${REGLIB_REF_URL:-}" ]; then
		echo "tok-$1"
		return 0
	fi
	if [ "$1" != root ] && [ -z "${_REG_USERS[$1]:-}" ]; then
		cairn_cli user create "$1" >/dev/null 2>&1 || { fail "cairn user create $1"; return 1; }
		_REG_USERS[$1]=1
	fi
	out=$(cairn_cli token create "$1" 2>&1) || { fail "cairn token create $1: $out"; return 1; }
	head -n1 <<<"$out"
}

gl() {
	local tok=$1
	shift
	# stdin closed: the CLI takes a stdin that is not a terminal as image data
	/usr/bin/glance --os-image-api-version 2 --os-image-url "$GLANCE_URL" --os-auth-token "$tok" "$@" <&-
}

osc() {
	local tok=$1
	shift
	/usr/bin/openstack --os-auth-type admin_token --os-endpoint "$GLANCE_URL/v2" --os-token "$tok" "$@" <&-
}

gfield() { # long values wrap onto rows with an empty first column: joined back
	awk -F'|' -v k="$2" '
		NF < 3 { if (f) exit; next }
		{ n = $2; v = $3; gsub(/^ +| +$/, "", n); gsub(/^ +| +$/, "", v) }
		f && n == "" { out = out v; next }
		f { exit }
		n == k { f = 1; out = v }
		END { if (f) print out }' <<<"$1"
}

gapi() {
	local tok=$1 method=$2 path=$3
	shift 3
	curl -sS -X "$method" -H "X-Auth-Token: $tok" -w '\n%{http_code}' "$@" "$GLANCE_URL$path"
}

wait_active() {
	local st= n
	[ -n "$2" ] || return 0
	for ((n = 0; n < 300; n++)); do
		st=$(curl -s -H "X-Auth-Token: $1" "$GLANCE_URL/v2/images/$2" | jq -r '.status // empty' 2>/dev/null)
		[ "$st" = active ] && break
		sleep 0.2
	done
	echo "$st"
}
