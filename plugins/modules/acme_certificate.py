#!/usr/bin/python
# Copyright: hardenkit developers
# Apache License 2.0 (see galaxy.yml)
"""Obtain an ACME certificate with certbot over HTTP-01 when the host has none that fits."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: acme_certificate
short_description: Obtain a certificate with certbot (HTTP-01, webroot) when none fits
version_added: "0.3.0"
description:
  - Reads the certificate certbot keeps under O(config_dir) for O(cert_name) (with
    C(openssl x509)) and the ACME server its renewal configuration names. When there is
    none, or it names other names than O(names), or comes from another server than
    O(directory), runs C(certbot certonly --webroot) to obtain one. Nothing else; renewal
    before expiry is certbot's own (C(certbot renew), run by a timer), which keeps
    O(deploy_hook) and runs it after each renewal.
  - certbot writes the challenge into O(webroot), which the web server must already serve
    at C(http://<name>/.well-known/acme-challenge/) for every name.
  - Fails with what the ACME server reported for each name (its problem type and detail)
    or certbot's own error, never touching a certificate already there.
author:
  - hardenkit developers
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the certificate and says whether it would obtain one, without asking the
        ACME server.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  names:
    description: The DNS names the certificate must hold, the first its subject.
    type: list
    elements: str
    required: true
  email:
    description: The account's contact address.
    type: str
    required: true
  directory:
    description: The ACME server's directory URL.
    type: str
    required: true
  cert_name:
    description: certbot's name for the certificate (C(live/<cert_name>/)).
    type: str
    required: true
  config_dir:
    description: certbot's configuration directory (C(--config-dir)), the kit's own.
    type: path
    required: true
  work_dir:
    description: certbot's working directory (C(--work-dir)).
    type: path
    required: true
  logs_dir:
    description: certbot's log directory (C(--logs-dir)).
    type: path
    required: true
  webroot:
    description: The directory the web server serves C(/.well-known/acme-challenge/) from.
    type: path
    required: true
  deploy_hook:
    description: A shell command certbot runs after it obtained or renewed the certificate.
    type: str
    default: ""
  ca_bundle:
    description:
      - A PEM file on the host with the CA that signs the ACME server's own HTTPS
        certificate (a private server, as step-ca or Pebble); certbot then trusts it alone
        (C(REQUESTS_CA_BUNDLE)). Empty, the host's trust store.
    type: path
notes:
  - Needs certbot (Debian's C(certbot) package) and C(openssl) on the host.
"""

EXAMPLES = r"""
- name: Obtain the certificate for the site
  hardenkit.nodeapp.acme_certificate:
    names: [shop.example.com, www.shop.example.com]
    email: ops@example.com
    directory: https://acme-v02.api.letsencrypt.org/directory
    cert_name: shop
    config_dir: /etc/hardenkit/acme/shop
    work_dir: /var/lib/hardenkit/acme/shop/work
    logs_dir: /var/lib/hardenkit/acme/shop/logs
    webroot: /var/lib/hardenkit/acme/shop/webroot
    deploy_hook: nginx -t -q && systemctl reload nginx
"""

RETURN = r"""
reason:
  description: Why a certificate was (or would be) obtained; empty when the one there fits.
  type: str
  returned: always
  sample: no certificate yet
certificate:
  description:
    - The certificate there after the run, C({fullchain, key, names, serial, not_after,
      issuer}); null when there is none.
  type: dict
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hardenkit.nodeapp.plugins.module_utils.acme import (
    certbot_argv,
    certbot_reason,
    issue_reason,
    read_certificate,
    read_server,
)

ARGUMENT_SPEC = {
    "names": {"type": "list", "elements": "str", "required": True},
    "email": {"type": "str", "required": True},
    "directory": {"type": "str", "required": True},
    "cert_name": {"type": "str", "required": True},
    "config_dir": {"type": "path", "required": True},
    "work_dir": {"type": "path", "required": True},
    "logs_dir": {"type": "path", "required": True},
    "webroot": {"type": "path", "required": True},
    "deploy_hook": {"type": "str", "default": ""},
    "ca_bundle": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if not p["names"]:
        module.fail_json(msg="names must not be empty")
    live = f"{p['config_dir']}/live/{p['cert_name']}"

    def certificate() -> dict | None:
        if not os.path.exists(f"{live}/cert.pem"):
            return None
        # Only to read a certificate there (a check-mode run before the install has none).
        openssl = module.get_bin_path("openssl", required=True)
        cert = read_certificate(f"{live}/cert.pem", openssl)
        if cert is not None:
            cert.update(fullchain=f"{live}/fullchain.pem", key=f"{live}/privkey.pem")
        return cert

    current = certificate()
    server = read_server(f"{p['config_dir']}/renewal/{p['cert_name']}.conf")
    reason = issue_reason(current, server, p["names"], p["directory"])
    if not reason or module.check_mode:
        module.exit_json(changed=bool(reason), reason=reason, certificate=current)

    certbot = module.get_bin_path("certbot", required=True)
    argv = certbot_argv(
        certbot,
        names=p["names"],
        email=p["email"],
        directory=p["directory"],
        cert_name=p["cert_name"],
        webroot=p["webroot"],
        dirs={"config": p["config_dir"], "work": p["work_dir"], "logs": p["logs_dir"]},
        deploy_hook=p["deploy_hook"],
    )
    env = {"LC_ALL": "C"}
    if p["ca_bundle"]:
        env["REQUESTS_CA_BUNDLE"] = p["ca_bundle"]
    rc, out, err = module.run_command(argv, environ_update=env)
    if rc != 0:
        module.fail_json(
            msg=f"certbot could not obtain a certificate for {', '.join(p['names'])} from "
            f"{p['directory']}: {certbot_reason(out, err)}",
            reason=reason,
            certificate=current,
            rc=rc,
        )
    module.exit_json(changed=True, reason=reason, certificate=certificate())


if __name__ == "__main__":
    main()
