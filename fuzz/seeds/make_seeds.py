#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into corpus/<target>/seed-*.

Real requests of Okta and Entra ID (docs/idp-requests, the it tests) and sample host
files. Run once; `cargo fuzz run` grows the corpora from them.
"""
import json, os, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

filters = [
    'userName eq "jane@example.com"',
    'userName eq "JANE@EXAMPLE.COM"',
    'externalId eq "3b2e2b1f-9c5b-4b7a-a1f2-0f5a2f6c7d8e"',
    'displayName eq "Engineering"',
    'emails[type eq "work"].value eq "jane@example.com"',
    'emails[type eq "work" and value co "@example"]',
    'id eq "g1" and members eq "u1"',
    'id eq "u1" and manager eq "m1"',
    'roles[primary eq "True"]',
    'active eq "False"',
    'active eq false',
    'title pr or nickName pr and not (locale pr)',
    f'{ENT}:department eq "R&D"',
    'urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "J"',
    'meta.lastModified gt "2026-01-01T00:00:00Z" and meta.created le "2026-12-31T23:59:59.5+01:00"',
    'meta.resourceType eq "User"',
    'x509Certificates.value eq "AA=="',
    'externalId eq null or externalId ne null',
    'members[value eq "u1"]',
    'groups eq "g1"',
    'name.familyName ew "oe" and emails co "home"',
    'displayName eq "a \\"quoted\\" \\u00e9" and title gt "M"',
    'phoneNumbers[type eq "mobile" and not (value sw "+1")]',
    f'{ENT}:manager.value eq "m1"',
    'emails',
    'name.givenName',
    f'{ENT}:employeeNumber',
    'userName,emails.value,-members',
]

user = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "jane@example.com",
    "name": {"givenName": "Jane", "familyName": "Doe"},
    "emails": [{"primary": True, "value": "jane@example.com", "type": "work"}],
    "displayName": "Jane Doe", "locale": "en-US", "externalId": "00u1abcd",
    "groups": [], "password": "1mz050nq", "active": True,
}
entra_user = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
    "externalId": "3b2e2b1f", "userName": "Test_User_ab6490ee@contoso.com", "active": True,
    "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@contoso.com"}],
    "meta": {"resourceType": "User"},
    "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
    "roles": [],
    ENT: {"department": "R&D", "employeeNumber": "42", "manager": {"value": "m1"}},
}
group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "members": []}
entra_group = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
    "externalId": "8aa1a0c0", "displayName": "Group1DisplayName",
    "members": [{"value": "u1", "type": "User"}, {"value": "g2", "type": "Group", "display": "Sub"}],
}
resources = [user, entra_user, group, entra_group,
             {"userName": "bare", "x509Certificates": [{"value": "AA=="}], "timezone": "Europe/Paris",
              "addresses": [{"type": "work", "streetAddress": "1 Rue", "primary": True}],
              "ims": [{"value": "jd", "type": "xmpp"}], "photos": [{"value": "https://x/p.png"}],
              "entitlements": [{"value": "e"}], "profileUrl": "https://x/jd", "userType": "Employee",
              "preferredLanguage": "fr", "nickName": "J", "title": "Eng"}]

def op(o, path=None, value=None):
    d = {"op": o}
    if path is not None: d["path"] = path
    if value is not None: d["value"] = value
    return d

P = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
patches = [
    [op("replace", value={"active": False})],
    [op("replace", value={"id": "g1", "displayName": "Eng 2"})],
    [op("remove", 'members[value eq "u1"]'), op("add", "members", [{"value": "u3", "display": "jane@example.com"}])],
    [op("replace", "members", [{"value": "u1"}, {"value": "u2"}])],
    [op("Replace", 'emails[type eq "work"].value', "new@example.com")],
    [op("Replace", "active", "False")],
    [op("Add", f"{ENT}:department", "Sales")],
    [op("Add", "manager", [{"$ref": "https://x/Users/m2", "value": "m2"}])],
    [op("Replace", f"{ENT}:manager", {"value": ""})],
    [op("Add", 'emails[type eq "home"].value', "h@example.com"), op("Add", 'emails[type eq "home"].primary', True)],
    [op("Add", "members", [{"$ref": None, "value": "u9"}])],
    [op("Remove", "members", [{"$ref": None, "value": "u1"}])],
    [op("replace", value={"displayName": "D", "name.givenName": "G", "name.familyName": "F", f"{ENT}:employeeNumber": "7"})],
    [],
    [op("remove", "title"), op("remove", "emails"), op("add", "phoneNumbers", {"type": "work", "value": "1"})],
    [op("remove", "members")],
    [op("replace", "name.givenName", "Janet"), op("remove", 'roles[primary eq true]')],
]

hosts_csv = ("uuid,hostname,hardware_serial,platform,os_version,seen_time,idp,custom\n"
             "a1,mac-1,C02X,darwin,14.5,2026-01-02T03:04:05Z,jane@example.com,jd@x.com;j2@x.com\n"
             "a2,win-2,,windows,,,\"bob@example.com\",\n"
             "a1,dup,,,,,,\n")
hosts_csv2 = "uuid,email,source\nb1,jane@example.com,mdm_idp_accounts\nb2,,\n"
host = {"uuid": "c1", "hostname": "mac-1", "computer_name": "Jane's Mac", "platform": "darwin",
        "os_version": "14.5", "hardware_model": "MacBookPro18,1", "hardware_serial": "C02X",
        "seen_time": "2026-01-02T03:04:05Z",
        "device_mapping": [{"email": "jane@example.com", "source": "idp"},
                           {"email": "j@x.com", "source": "google_chrome_profiles"}]}
hosts = [
    "c" + hosts_csv, "c" + hosts_csv2,
    "j" + json.dumps([host, {"uuid": "c2"}, {"uuid": ""}], indent=1),
    "j" + json.dumps({"hosts": [host]}),
    "j" + json.dumps(host) + "\n" + json.dumps({"uuid": "c3", "seen_time": "bad"}),
    "l" + json.dumps(host) + "\n\n" + "not json\n" + json.dumps({"uuid": "c1"}) + "\n",
    "a" + json.dumps(host),
    "a" + json.dumps({"uuid": "x", "device_mapping": [{"email": "a b", "source": "nope"}]}),
]

def write(target, items):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    for i, item in enumerate(items):
        with open(os.path.join(d, f"seed-{i:02}"), "w") as f:
            f.write(item)

write("filter", filters)
write("patch", [json.dumps({"schemas": [P], "Operations": ops}) for ops in patches])
write("resource", [json.dumps(r) for r in resources])
write("host_import", hosts)
