"""glance-ref/authmap.py - paste filter for the reference glance-api (start.sh):
X-Auth-Token "tok-USER" -> a Keystone-style identity of project USER (role
member); the registry tests' admin token -> an admin; anything else -> 401
(keystonemiddleware's body)."""
import json
ADMIN = "cairn-test-admin-token-0123456789abcdef"


class TokenMap:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        for k in list(environ):
            if k.startswith("HTTP_X_IDENTITY") or k in ("HTTP_X_USER_ID", "HTTP_X_PROJECT_ID", "HTTP_X_TENANT_ID",
                                                        "HTTP_X_ROLES", "HTTP_X_ROLE"):
                del environ[k]
        tok = environ.get("HTTP_X_AUTH_TOKEN", "")
        user = roles = None
        if tok == ADMIN:
            user, roles = "root", "admin,member,reader"
        elif tok.startswith("tok-"):
            user, roles = tok[4:], "member,reader"
        path = environ.get("PATH_INFO", "")
        if user is None and path not in ("/", "/versions"):
            body = json.dumps({"error": {"code": 401, "title": "Unauthorized",
                                          "message": "The request you have made requires authentication."}}).encode()
            start_response("401 Unauthorized", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if user:
            environ.update({"HTTP_X_IDENTITY_STATUS": "Confirmed", "HTTP_X_USER_ID": user,
                            "HTTP_X_PROJECT_ID": user, "HTTP_X_TENANT_ID": user, "HTTP_X_ROLES": roles})
        return self.app(environ, start_response)


def factory(global_conf, **local_conf):
    return TokenMap
