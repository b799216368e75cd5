#!/bin/bash
# tests/integration/glance-ref/start.sh DIR PORT [IMAGE_SIZE_CAP]
# Test-of-the-tests: runs Debian's glance-api (Glance 25, package glance-api)
# on 127.0.0.1:PORT with sqlite and its file store under DIR, so the registry
# tests can be pointed at the reference instead of cairn:
#   REGLIB_REF_URL=http://127.0.0.1:PORT /usr/bin/python3 tests/integration/242-glanceclient-api.py
#   REGLIB_REF_URL=http://127.0.0.1:PORT bash tests/integration/240-glance-cli.sh
# No Keystone: authmap.py maps X-Auth-Token "tok-USER" to project USER (role
# member) and the tests' admin token to an admin, then Glance's own context
# middleware runs. web-download is allowed from 127.0.0.1 on any port. The
# cairn-only checks (schema fields, s3-object, S3, pool, CLI) fail there by
# design; everything else passing there is Glance's behaviour.
# Stop: kill the glance-api processes listening on PORT.
set -euo pipefail
dir=$1 port=$2 cap=${3:-67108864}
here=$(cd "$(dirname "$0")" && pwd)
command -v glance-api >/dev/null || { echo "glance-ref: needs the glance-api package" >&2; exit 1; }
mkdir -p "$dir/images" "$dir/staging" "$dir/lock"
rm -f "$dir/glance.sqlite"
cat >"$dir/paste.ini" <<PASTE
[pipeline:glance-api]
pipeline = cors healthcheck http_proxy_to_wsgi versionnegotiation authmap context rootapp
[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app
[app:apiversions]
paste.app_factory = glance.api.versions:create_resource
[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory
[filter:healthcheck]
paste.filter_factory = oslo_middleware:Healthcheck.factory
backends = disable_by_file
disable_by_file_path = /etc/glance/healthcheck_disable
[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory
[filter:authmap]
paste.filter_factory = authmap:factory
[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = glance
oslo_config_program = glance-api
[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
PASTE
cat >"$dir/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
workers = 1
image_size_cap = $cap
enabled_import_methods = [glance-direct,web-download]
log_file = $dir/glance-api.log
use_stderr = false
node_staging_uri = file://$dir/staging
[database]
connection = sqlite:///$dir/glance.sqlite
[glance_store]
stores = file
default_store = file
filesystem_store_datadir = $dir/images/
[paste_deploy]
flavor =
config_file = $dir/paste.ini
[oslo_concurrency]
lock_path = $dir/lock
[import_filtering_opts]
allowed_hosts = [127.0.0.1]
allowed_ports = []
CONF
glance-manage --config-file "$dir/glance-api.conf" db_sync >"$dir/db_sync.log" 2>&1
cd "$here"
PYTHONPATH=$here setsid glance-api --config-file "$dir/glance-api.conf" </dev/null >"$dir/stdout.log" 2>&1 &
for _ in $(seq 150); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 300 ] && exit 0
	sleep 0.2
done
echo "glance-ref: no answer on port $port; see $dir/glance-api.log" >&2
exit 1
