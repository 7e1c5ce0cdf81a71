#!/usr/bin/python3
"""Write sops-encrypted fixture files for an age recipient, independently of seed's
code: AES-256-GCM from Python's cryptography, the data key wrapped by the real `age`
command, and the file format as sops 3.x writes it (sops.go Tree.Encrypt,
aes/cipher.go, stores/): values ENC[AES256_GCM,data:,iv:,tag:,type:] with a 32-byte
IV and the key path "a:b:" as additional data, sops.mac = the upper-case hex SHA-512
of the values in document order, encrypted with sops.lastmodified as additional data.

Usage: make-fixtures.py OUT_DIR [RECIPIENT]
Without RECIPIENT, OUT_DIR/key.txt (age-keygen's file) is used, or made.
The committed tests/unit/data/sops/fixtures were written by this script."""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

LASTMODIFIED = "2026-12-03T12:00:00Z"
MAC_ONLY_INIT = bytes([0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47,
                       0xbe, 0x0b, 0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81,
                       0x76, 0xf2, 0x7d, 0x69])


def to_bytes(v):
    """sops.go ToBytes."""
    if isinstance(v, bool):
        return b"True" if v else b"False"
    if isinstance(v, (int, float)):
        return repr(v).encode()
    return v.encode()


def type_of(v):
    return {bool: "bool", int: "int", float: "float", str: "str"}[type(v)]


def enc(key, v, aad):
    if v == "":
        return ""
    iv = os.urandom(32)
    out = AESGCM(key).encrypt(iv, to_bytes(v), aad.encode())
    b64 = lambda b: base64.b64encode(b).decode()
    return "ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]" % (b64(out[:-16]), b64(iv), b64(out[-16:]), type_of(v))


def should_encrypt(path, rules):
    e = True
    if rules.get("unencrypted_suffix") and any(p.endswith(rules["unencrypted_suffix"]) for p in path):
        e = False
    if rules.get("encrypted_regex"):
        e = any(re.search(rules["encrypted_regex"], p) for p in path)
    return e


def encrypt_tree(tree, key, rules):
    """Encrypt a dict in place order; returns (encrypted tree, MAC hex)."""
    h = hashlib.sha512()
    if rules.get("mac_only_encrypted"):
        h.update(MAC_ONLY_INIT)

    def walk(v, path):
        if isinstance(v, dict):
            return {k: walk(x, path + [k]) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, path) for x in v]  # list items share the list's path
        if v is None:
            return None
        e = should_encrypt(path, rules)
        if e or not rules.get("mac_only_encrypted"):
            h.update(to_bytes(v))
        return enc(key, v, ":".join(path) + ":") if e else v

    out = walk(tree, [])
    return out, h.hexdigest().upper()


def age_wrap(data_key, recipient):
    return subprocess.run(["age", "-a", "-r", recipient], input=data_key, capture_output=True,
                          check=True).stdout.decode()


def metadata(key, mac, recipient, rules):
    m = {"age": [{"recipient": recipient, "enc": age_wrap(key, recipient)}],
         "lastmodified": LASTMODIFIED,
         "mac": enc(key, mac, LASTMODIFIED)}
    m.update(rules)
    m["version"] = "3.9.4"
    return m


def yaml_scalar(v, ind):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if "\n" in v:
        body = v[:-1] if v.endswith("\n") else v
        lines = "\n".join(" " * ind + line for line in body.split("\n"))
        return ("|" if v.endswith("\n") else "|-") + "\n" + lines
    if v.startswith("ENC[") or (re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", v) and
                                v not in ("true", "True", "false", "False", "null", "Null")):
        return v
    return json.dumps(v)


def yaml_dump(v, ind=0):
    out = []
    for k, x in v.items():
        pad = " " * ind
        if isinstance(x, dict):
            out.append("%s%s:\n%s" % (pad, k, yaml_dump(x, ind + 4)))
        elif isinstance(x, list):
            out.append("%s%s:" % (pad, k))
            for item in x:
                if isinstance(item, dict):
                    body = yaml_dump(item, ind + 6).lstrip()
                    out.append("%s    - %s" % (pad, body.rstrip("\n")))
                else:
                    out.append("%s    - %s" % (pad, yaml_scalar(item, ind + 6)))
        else:
            out.append("%s%s: %s" % (pad, k, yaml_scalar(x, ind + 4)))
    return "\n".join(out) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


APP = {
    "db": {"user": "admin", "password": "hunter2", "port": 5432, "ratio": 0.25, "tls": True, "nothing": None},
    "hosts": ["a.example", "b.example"],
    "cert": "-----BEGIN CERT-----\nAAAA\n-----END CERT-----\n",
    "public_unencrypted": "visible",
}
SUFFIX = {"unencrypted_suffix": "_unencrypted"}


def sops_doc(tree, recipient, rules=SUFFIX, key=None):
    key = key or os.urandom(32)
    t, mac = encrypt_tree(tree, key, rules)
    t["sops"] = metadata(key, mac, recipient, rules)
    return t


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    if len(sys.argv) > 2:
        recipient = sys.argv[2]
    else:
        kf = os.path.join(out, "key.txt")
        if not os.path.exists(kf):
            subprocess.run(["age-keygen", "-o", kf], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", kf], check=True, capture_output=True,
                                   text=True).stdout.strip()

    app = sops_doc(APP, recipient)
    write(os.path.join(out, "app.yaml"), yaml_dump(app))
    write(os.path.join(out, "app.json"), json.dumps(sops_doc(APP, recipient), indent=4) + "\n")

    # dotenv: every value a string, the metadata flattened with __map_/__list_.
    env = {"DB_PASSWORD": "hunter2", "MULTI": "line one\nline two"}
    key = os.urandom(32)
    t, mac = encrypt_tree(env, key, SUFFIX)
    m = metadata(key, mac, recipient, SUFFIX)
    lines = ["%s=%s" % (k, v) for k, v in t.items()]
    lines += ["sops_age__list_0__map_enc=" + m["age"][0]["enc"].replace("\n", "\\n"),
              "sops_age__list_0__map_recipient=" + recipient,
              "sops_lastmodified=" + m["lastmodified"], "sops_mac=" + m["mac"],
              "sops_unencrypted_suffix=_unencrypted", "sops_version=" + m["version"]]
    write(os.path.join(out, "app.env"), "\n".join(lines) + "\n")

    # binary: {"data": ENC[…str], "sops": …}
    write(os.path.join(out, "blob.bin"),
          json.dumps(sops_doc({"data": "raw bytes\nof a binary file\n"}, recipient, {}), indent=4) + "\n")

    regex_rules = {"encrypted_regex": "^(data|stringData)$", "mac_only_encrypted": True}
    write(os.path.join(out, "regex.yaml"),
          yaml_dump(sops_doc({"name": "plain-name", "data": {"token": "t0k3n"}}, recipient, regex_rules)))

    # Broken on purpose.
    t = sops_doc(APP, recipient)
    t["public_unencrypted"] = "changed"
    write(os.path.join(out, "tampered-mac.yaml"), yaml_dump(t))
    t = sops_doc(APP, recipient)
    v = t["db"]["password"]
    i = v.index("data:") + 5
    t["db"]["password"] = v[:i] + ("B" if v[i] != "B" else "C") + v[i + 1:]
    write(os.path.join(out, "tampered-value.yaml"), yaml_dump(t))
    t = sops_doc(APP, recipient)
    t["db"]["password"], t["db"]["user"] = t["db"]["user"], t["db"]["password"]
    write(os.path.join(out, "swapped.yaml"), yaml_dump(t))
    t = sops_doc(APP, recipient)
    t["db"]["port"] = 5432
    write(os.path.join(out, "plain-injected.yaml"), yaml_dump(t))
    other = subprocess.run(["age-keygen"], check=True, capture_output=True, text=True).stdout
    other_rcpt = [line.split(": ")[1] for line in other.splitlines() if line.startswith("# public key")][0]
    write(os.path.join(out, "other-recipient.yaml"), yaml_dump(sops_doc(APP, other_rcpt)))
    write(os.path.join(out, "no-metadata.yaml"), yaml_dump(APP))


if __name__ == "__main__":
    main()
