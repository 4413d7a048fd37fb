//! The attribute model of RFC 7643 §2 and §7, and the schemas Custodian serves.
//!
//! One model drives everything: `/Schemas` and `/ResourceTypes` are rendered from it,
//! incoming resources are validated and canonicalised with it, filters and PATCH paths
//! are resolved against it, and responses are projected with its `returned` rules.
//! They can therefore never disagree.

use serde_json::{Value, json};

use crate::limits::{LONG_VALUE_MAX_BYTES, NAME_MAX_BYTES};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// What a Google Workspace directory sync keeps of a user beyond the core and enterprise
/// schemas, so that it can be filtered like any other attribute.
pub const GOOGLE_WORKSPACE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:googleworkspace:2.0:User";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition (RFC 7643 §7).
#[derive(Debug, Clone, Copy)]
pub struct AttributeDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [AttributeDef],
    /// The longest text value accepted, in bytes of UTF-8 (`crate::limits`).
    pub max_bytes: usize,
    /// An attribute of a custom extension that no schema declares (`crate::custom`):
    /// its values are kept as sent and compared as case-insensitive text.
    pub open: bool,
}

impl AttributeDef {
    /// A single-valued, optional, case-insensitive, read-write string: the common case.
    const fn string(name: &'static str, description: &'static str) -> Self {
        AttributeDef {
            name,
            ty: AttrType::String,
            multi_valued: false,
            description,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
            max_bytes: NAME_MAX_BYTES,
            open: false,
        }
    }
    /// An attribute of an undeclared custom extension (`crate::custom`): text, or an
    /// object of such text for `complex`.
    pub(crate) const fn open(name: &'static str, complex: bool) -> Self {
        let mut a = Self::string(name, "An attribute of a custom extension, kept as sent.");
        a.max_bytes = LONG_VALUE_MAX_BYTES;
        a.open = true;
        if complex {
            a.ty = AttrType::Complex;
        }
        a
    }
    const fn of_type(mut self, ty: AttrType) -> Self {
        self.ty = ty;
        self
    }
    const fn complex(name: &'static str, description: &'static str, subs: &'static [AttributeDef]) -> Self {
        let mut a = Self::string(name, description);
        a.ty = AttrType::Complex;
        a.sub_attributes = subs;
        a
    }
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    const fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    const fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }
    /// A longer value than a name: an address, a URL, a certificate.
    const fn long(mut self) -> Self {
        self.max_bytes = LONG_VALUE_MAX_BYTES;
        self
    }
    const fn references(mut self, types: &'static [&'static str]) -> Self {
        self.ty = AttrType::Reference;
        self.reference_types = types;
        self
    }

    /// The sub-attribute of this complex attribute with this name, without regard to case.
    pub fn sub_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.sub_attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// This attribute as `/Schemas` renders it.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.ty.as_str(),
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "mutability": self.mutability.as_str(),
            "returned": self.returned.as_str(),
        });
        if let Some(obj) = v.as_object_mut() {
            if !matches!(self.ty, AttrType::Complex | AttrType::Boolean) {
                obj.insert("caseExact".into(), json!(self.case_exact));
                obj.insert("uniqueness".into(), json!(self.uniqueness.as_str()));
            }
            if !self.canonical_values.is_empty() {
                obj.insert("canonicalValues".into(), json!(self.canonical_values));
            }
            if self.ty == AttrType::Reference {
                obj.insert("referenceTypes".into(), json!(self.reference_types));
            }
            if self.ty == AttrType::Complex {
                let subs: Vec<Value> = self.sub_attributes.iter().map(|a| a.to_json()).collect();
                obj.insert("subAttributes".into(), Value::Array(subs));
            }
        }
        v
    }
}

/// A schema (RFC 7643 §7): a URN and its attributes.
#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttributeDef],
}

impl SchemaDef {
    pub fn attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// This schema as `/Schemas/{id}` renders it; `location` is the absolute URL of that route.
    pub fn to_json(&self, location: &str) -> Value {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(|a| a.to_json()).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": location},
        })
    }
}

const TYPE_PRIMARY_SUBS_DOC: &str = "A label indicating the attribute's function.";

macro_rules! multi_value_subs {
    ($value:expr, $types:expr) => {
        &[
            $value,
            AttributeDef::string("display", "A human-readable name, primarily used for display purposes.")
                .mutability(Mutability::ReadWrite),
            AttributeDef::string("type", TYPE_PRIMARY_SUBS_DOC).canonical($types),
            AttributeDef::string(
                "primary",
                "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
            )
            .of_type(AttrType::Boolean),
        ]
    };
}

static NAME_SUBS: &[AttributeDef] = &[
    AttributeDef::string(
        "formatted",
        "The full name, including all middle names, titles, and suffixes as appropriate, formatted for display.",
    ),
    AttributeDef::string("familyName", "The family name of the User, or last name in most Western languages."),
    AttributeDef::string("givenName", "The given name of the User, or first name in most Western languages."),
    AttributeDef::string("middleName", "The middle name(s) of the User."),
    AttributeDef::string(
        "honorificPrefix",
        "The honorific prefix(es) of the User, or title in most Western languages.",
    ),
    AttributeDef::string(
        "honorificSuffix",
        "The honorific suffix(es) of the User, or suffix in most Western languages.",
    ),
];

static EMAIL_SUBS: &[AttributeDef] =
    multi_value_subs!(AttributeDef::string("value", "Email addresses for the user."), &["work", "home", "other"]);
static PHONE_SUBS: &[AttributeDef] = multi_value_subs!(
    AttributeDef::string("value", "Phone number of the User."),
    &["work", "home", "mobile", "fax", "pager", "other"]
);
static IM_SUBS: &[AttributeDef] = multi_value_subs!(
    AttributeDef::string("value", "Instant messaging address for the User."),
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]
);
static PHOTO_SUBS: &[AttributeDef] = multi_value_subs!(
    AttributeDef::string("value", "URL of a photo of the User.").references(&["external"]).long(),
    &["photo", "thumbnail"]
);
static ENTITLEMENT_SUBS: &[AttributeDef] =
    multi_value_subs!(AttributeDef::string("value", "The value of an entitlement."), &[]);
static ROLE_SUBS: &[AttributeDef] = multi_value_subs!(AttributeDef::string("value", "The value of a role."), &[]);
static CERT_SUBS: &[AttributeDef] = multi_value_subs!(
    AttributeDef::string("value", "The value of an X.509 certificate.").of_type(AttrType::Binary).long(),
    &[]
);

static ADDRESS_SUBS: &[AttributeDef] = &[
    AttributeDef::string("formatted", "The full mailing address, formatted for display or use with a mailing label.")
        .long(),
    AttributeDef::string("streetAddress", "The full street address component.").long(),
    AttributeDef::string("locality", "The city or locality component."),
    AttributeDef::string("region", "The state or region component."),
    AttributeDef::string("postalCode", "The zip code or postal code component."),
    AttributeDef::string("country", "The country name component."),
    AttributeDef::string("type", TYPE_PRIMARY_SUBS_DOC).canonical(&["work", "home", "other"]),
    AttributeDef::string("primary", "A Boolean value indicating the 'primary' or preferred address.")
        .of_type(AttrType::Boolean),
];

static USER_GROUP_SUBS: &[AttributeDef] = &[
    AttributeDef::string("value", "The identifier of the User's group.").mutability(Mutability::ReadOnly),
    AttributeDef::string("$ref", "The URI of the corresponding 'Group' resource to which the user belongs.")
        .references(&["User", "Group"])
        .mutability(Mutability::ReadOnly),
    AttributeDef::string("display", "A human-readable name, primarily used for display purposes.")
        .mutability(Mutability::ReadOnly),
    AttributeDef::string("type", "A label indicating the attribute's function, e.g., 'direct' or 'indirect'.")
        .canonical(&["direct", "indirect"])
        .mutability(Mutability::ReadOnly),
];

static USER_ATTRIBUTES: &[AttributeDef] = &[
    AttributeDef::string(
        "userName",
        "Unique identifier for the User, typically used by the user to directly authenticate to the service provider.",
    )
    .required()
    .unique(Uniqueness::Server),
    AttributeDef::complex("name", "The components of the user's real name.", NAME_SUBS),
    AttributeDef::string("displayName", "The name of the User, suitable for display to end-users."),
    AttributeDef::string("nickName", "The casual way to address the user in real life."),
    AttributeDef::string(
        "profileUrl",
        "A fully qualified URL pointing to a page representing the User's online profile.",
    )
    .references(&["external"])
    .long(),
    AttributeDef::string("title", "The user's title, such as \"Vice President.\""),
    AttributeDef::string("userType", "Used to identify the relationship between the organization and the user."),
    AttributeDef::string("preferredLanguage", "Indicates the User's preferred written or spoken language."),
    AttributeDef::string("locale", "Used to indicate the User's default location for purposes of localizing items."),
    AttributeDef::string("timezone", "The User's time zone in the 'Olson' time zone database format."),
    AttributeDef::string("active", "A Boolean value indicating the User's administrative status.")
        .of_type(AttrType::Boolean),
    AttributeDef::string("password", "The User's cleartext password. Accepted, never stored in clear, never returned.")
        .mutability(Mutability::WriteOnly)
        .returned(Returned::Never)
        .case_exact(),
    AttributeDef::complex("emails", "Email addresses for the user.", EMAIL_SUBS).multi(),
    AttributeDef::complex("phoneNumbers", "Phone numbers for the User.", PHONE_SUBS).multi(),
    AttributeDef::complex("ims", "Instant messaging addresses for the User.", IM_SUBS).multi(),
    AttributeDef::complex("photos", "URLs of photos of the User.", PHOTO_SUBS).multi(),
    AttributeDef::complex("addresses", "A physical mailing address for this User.", ADDRESS_SUBS).multi(),
    AttributeDef::complex(
        "groups",
        "A list of groups to which the user belongs, either through direct membership or through nested groups.",
        USER_GROUP_SUBS,
    )
    .multi()
    .mutability(Mutability::ReadOnly),
    AttributeDef::complex("entitlements", "A list of entitlements for the User.", ENTITLEMENT_SUBS).multi(),
    AttributeDef::complex("roles", "A list of roles for the User.", ROLE_SUBS).multi(),
    AttributeDef::complex("x509Certificates", "A list of certificates issued to the User.", CERT_SUBS).multi(),
];

static MANAGER_SUBS: &[AttributeDef] = &[
    AttributeDef::string("value", "The id of the SCIM resource representing the User's manager."),
    AttributeDef::string("$ref", "The URI of the SCIM resource representing the User's manager.")
        .references(&["User"])
        .long(),
    // RFC 7643 marks it readOnly: a provider that resolves the reference fills it in.
    // Custodian keeps what the IdP sends instead (Okta maps its manager's name here, and
    // the manager is often not a user of the same connection): it is what
    // `$FLEET_VAR_HOST_END_USER_IDP_MANAGER` falls back to.
    AttributeDef::string("displayName", "The displayName of the User's manager, as the IdP sent it."),
];

static ENTERPRISE_ATTRIBUTES: &[AttributeDef] = &[
    AttributeDef::string("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
    AttributeDef::string("costCenter", "Identifies the name of a cost center."),
    AttributeDef::string("organization", "Identifies the name of an organization."),
    AttributeDef::string("division", "Identifies the name of a division."),
    AttributeDef::string("department", "Identifies the name of a department."),
    AttributeDef::complex("manager", "The User's manager.", MANAGER_SUBS),
];

static GOOGLE_EXTERNAL_ID_SUBS: &[AttributeDef] = &[
    AttributeDef::string("value", "The value of the ID."),
    AttributeDef::string("type", "The type of the ID: account, custom, customer, network, organization, login_id."),
    AttributeDef::string("customType", "The type of the ID when type is custom."),
];

static GOOGLE_CUSTOM_SCHEMA_SUBS: &[AttributeDef] = &[
    AttributeDef::string("schemaName", "The name of the custom schema in Google Workspace.").case_exact(),
    AttributeDef::string("fieldName", "The name of the field in that schema.").case_exact(),
    AttributeDef::string("value", "The field's value, as text (one element per value of a multi-valued field).").long(),
];

static GOOGLE_WORKSPACE_ATTRIBUTES: &[AttributeDef] = &[
    AttributeDef::string("orgUnitPath", "The full path of the user's organizational unit, such as /Engineering.")
        .case_exact(),
    AttributeDef::complex(
        "externalIds",
        "The user's external IDs, as Google Workspace holds them.",
        GOOGLE_EXTERNAL_ID_SUBS,
    )
    .multi(),
    AttributeDef::complex(
        "customSchemas",
        "The user's custom schema fields, one element per field value.",
        GOOGLE_CUSTOM_SCHEMA_SUBS,
    )
    .multi(),
];

static MEMBER_SUBS: &[AttributeDef] = &[
    AttributeDef::string("value", "Identifier of the member of this Group.")
        .case_exact()
        .mutability(Mutability::Immutable),
    AttributeDef::string("$ref", "The URI corresponding to a SCIM resource that is a member of this Group.")
        .references(&["User", "Group"])
        .mutability(Mutability::Immutable),
    // Derived from the member's own name, so it is returned only when asked for: a
    // client that compares what it PATCHed with what comes back must not see it.
    AttributeDef::string("display", "A human-readable name for the member (returned when requested).")
        .mutability(Mutability::ReadOnly)
        .returned(Returned::Request),
    AttributeDef::string("type", "A label indicating the type of resource, e.g., 'User' or 'Group'.")
        .canonical(&["User", "Group"])
        .mutability(Mutability::Immutable),
];

static GROUP_ATTRIBUTES: &[AttributeDef] = &[
    AttributeDef::string("displayName", "A human-readable name for the Group.").required().unique(Uniqueness::Server),
    AttributeDef::complex("members", "A list of members of the Group.", MEMBER_SUBS).multi(),
];

pub static USER: SchemaDef =
    SchemaDef { id: USER_SCHEMA, name: "User", description: "User Account", attributes: USER_ATTRIBUTES };

pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_ATTRIBUTES,
};

pub static GOOGLE_WORKSPACE_USER: SchemaDef = SchemaDef {
    id: GOOGLE_WORKSPACE_USER_SCHEMA,
    name: "GoogleWorkspaceUser",
    description: "What a Google Workspace directory sync keeps of a user",
    attributes: GOOGLE_WORKSPACE_ATTRIBUTES,
};

pub static GROUP: SchemaDef =
    SchemaDef { id: GROUP_SCHEMA, name: "Group", description: "Group", attributes: GROUP_ATTRIBUTES };

/// Every schema served at `/Schemas`, in a stable order.
/// The Google Workspace extension is not among them: only directory syncs write it, so
/// SCIM clients are not offered it (it is stored, returned and filtered all the same).
static ALL_SCHEMAS: &[&SchemaDef] = &[&USER, &ENTERPRISE_USER, &GROUP];

/// Every schema `/Schemas` lists: Custodian's, then those a schema file declares.
pub fn all_schemas() -> &'static [&'static SchemaDef] {
    crate::declared::all_schemas(ALL_SCHEMAS)
}

pub(crate) fn builtin_schemas() -> &'static [&'static SchemaDef] {
    ALL_SCHEMAS
}

pub(crate) fn builtin_user_extensions() -> &'static [&'static SchemaDef] {
    USER_EXTENSIONS
}

/// The attributes common to every resource (RFC 7643 §3.1). They are not part of any
/// schema's `attributes` in `/Schemas`, but filters, sorting and projection know them.
static META_SUBS: &[AttributeDef] = &[
    AttributeDef::string("resourceType", "The name of the resource type of the resource.")
        .case_exact()
        .mutability(Mutability::ReadOnly),
    AttributeDef::string("created", "The DateTime that the resource was added to the service provider.")
        .of_type(AttrType::DateTime)
        .mutability(Mutability::ReadOnly),
    AttributeDef::string("lastModified", "The most recent DateTime that the details of this resource were updated.")
        .of_type(AttrType::DateTime)
        .mutability(Mutability::ReadOnly),
    AttributeDef::string("location", "The URI of the resource being returned.")
        .references(&["uri"])
        .case_exact()
        .mutability(Mutability::ReadOnly),
    AttributeDef::string("version", "The version of the resource being returned.")
        .case_exact()
        .mutability(Mutability::ReadOnly),
];

pub static COMMON_ATTRIBUTES: &[AttributeDef] = &[
    AttributeDef::string("id", "A unique identifier for a SCIM resource as defined by the service provider.")
        .case_exact()
        .mutability(Mutability::ReadOnly)
        .returned(Returned::Always)
        .unique(Uniqueness::Server),
    AttributeDef::string(
        "externalId",
        "A String that is an identifier for the resource as defined by the provisioning client.",
    )
    .case_exact(),
    AttributeDef::complex("meta", "A complex attribute containing resource metadata.", META_SUBS)
        .mutability(Mutability::ReadOnly),
];

/// The two resource types Custodian serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "/Users",
            ResourceKind::Group => "/Groups",
        }
    }
    pub fn core_schema(self) -> &'static SchemaDef {
        match self {
            ResourceKind::User => &USER,
            ResourceKind::Group => &GROUP,
        }
    }
    pub fn extensions(self) -> &'static [&'static SchemaDef] {
        match self {
            ResourceKind::User => crate::declared::user_extensions(USER_EXTENSIONS),
            ResourceKind::Group => &[],
        }
    }

    /// The resource type as `/ResourceTypes/{id}` renders it.
    pub fn resource_type_json(self, location: &str) -> Value {
        let extensions: Vec<Value> = self
            .extensions()
            .iter()
            .filter(|s| all_schemas().iter().any(|a| a.id == s.id))
            .map(|s| json!({"schema": s.id, "required": false}))
            .collect();
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name(),
            "name": self.name(),
            "endpoint": self.endpoint(),
            "description": self.core_schema().description,
            "schema": self.core_schema().id,
            "schemaExtensions": extensions,
            "meta": {"resourceType": "ResourceType", "location": location},
        })
    }
}

static USER_EXTENSIONS: &[&SchemaDef] = &[&ENTERPRISE_USER, &GOOGLE_WORKSPACE_USER];

pub static ALL_KINDS: &[ResourceKind] = &[ResourceKind::User, ResourceKind::Group];

/// Where an attribute lives: in the core schema (top level of the JSON document) or in
/// an extension (under the extension's URN key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrLocation {
    Common,
    Core,
    Extension(&'static str),
    /// A custom extension that no schema declares (`crate::custom`).
    Custom(&'static str),
}

/// An attribute resolved against a resource type: where it lives, its definition and,
/// when the path names one, the sub-attribute.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAttr {
    pub location: AttrLocation,
    pub attr: &'static AttributeDef,
    pub sub: Option<&'static AttributeDef>,
}

impl ResolvedAttr {
    /// The definition that holds the values: the sub-attribute when there is one.
    pub fn leaf(&self) -> &'static AttributeDef {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical dotted path, with the extension URN prefixed: the key used by the
    /// attribute index that filters are translated against.
    /// Custom attributes are keyed in lower case: their spelling is the client's.
    pub fn canonical_path(&self) -> String {
        let mut p = String::new();
        if let AttrLocation::Extension(urn) | AttrLocation::Custom(urn) = self.location {
            p.push_str(urn);
            p.push(':');
        }
        p.push_str(self.attr.name);
        if let Some(sub) = self.sub {
            p.push('.');
            p.push_str(sub.name);
        }
        if matches!(self.location, AttrLocation::Custom(_)) {
            p.make_ascii_lowercase();
        }
        p
    }
}

impl ResourceKind {
    /// Resolves `[urn:]attr[.sub]` (already split) against this resource type, without
    /// regard to case. `urn` is the schema URN written before the attribute, if any;
    /// without one, common and core attributes are looked up first, then extensions.
    pub fn resolve(self, urn: Option<&str>, attr: &str, sub: Option<&str>) -> Option<ResolvedAttr> {
        let (location, def) = match urn {
            Some(urn) => {
                let Some(schema) = std::iter::once(self.core_schema())
                    .chain(self.extensions().iter().copied())
                    .find(|s| s.id.eq_ignore_ascii_case(urn))
                else {
                    return self.resolve_custom(urn, attr, sub);
                };
                if std::ptr::eq(schema, self.core_schema()) {
                    match schema.attribute(attr) {
                        Some(d) => (AttrLocation::Core, d),
                        None => (AttrLocation::Common, common_attribute(attr)?),
                    }
                } else {
                    (AttrLocation::Extension(schema.id), schema.attribute(attr)?)
                }
            }
            None => {
                if let Some(d) = common_attribute(attr) {
                    (AttrLocation::Common, d)
                } else if let Some(d) = self.core_schema().attribute(attr) {
                    (AttrLocation::Core, d)
                } else {
                    // Entra writes extension attributes without their URN ("manager",
                    // "department"); names do not collide between our schemas.
                    self.extensions()
                        .iter()
                        .find_map(|e| e.attribute(attr).map(|d| (AttrLocation::Extension(e.id), d)))?
                }
            }
        };
        let sub = match sub {
            Some(s) => Some(def.sub_attribute(s)?),
            None => None,
        };
        Some(ResolvedAttr { location, attr: def, sub })
    }

    /// An attribute of a custom extension (`crate::custom`): text, or an object of text
    /// when a sub-attribute is named.
    fn resolve_custom(self, urn: &str, attr: &str, sub: Option<&str>) -> Option<ResolvedAttr> {
        if !crate::custom::is_custom_urn(self, urn) {
            return None;
        }
        let schema = crate::custom::schema(self, urn).ok()?;
        let def = crate::custom::attribute(attr, sub.is_some()).ok()?;
        let sub = match sub {
            Some(s) => Some(crate::custom::attribute(s, false).ok()?),
            None => None,
        };
        Some(ResolvedAttr { location: AttrLocation::Custom(schema.id), attr: def, sub })
    }

    /// Resolves a full attribute path string such as `name.givenName`,
    /// `emails.value` or `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`.
    pub fn resolve_path(self, path: &str) -> Option<ResolvedAttr> {
        let (urn, rest) = split_urn(path);
        let (attr, sub) = match rest.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (rest, None),
        };
        self.resolve(urn, attr, sub)
    }
}

/// Splits `urn:...:Schema:attr.sub` into the schema URN and the attribute path. A path
/// without a URN returns `(None, path)`.
pub fn split_urn(path: &str) -> (Option<&str>, &str) {
    // `get`, not `[..4]`: client paths may have a multi-byte character within the first
    // four bytes (found by fuzzing: `sortBy=maʚ` panicked).
    if path.len() > 4 && path.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        // The attribute name follows the last ':'; a sub-attribute may follow a '.'
        // after it. Schema URNs themselves contain dots ("2.0"), so split on ':' first.
        if let Some(idx) = path.rfind(':') {
            return (Some(&path[..idx]), &path[idx + 1..]);
        }
    }
    (None, path)
}

pub fn common_attribute(name: &str) -> Option<&'static AttributeDef> {
    COMMON_ATTRIBUTES.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_without_regard_to_case() {
        let r = ResourceKind::User.resolve_path("NAME.givenname").map(|r| r.canonical_path());
        assert_eq!(r.as_deref(), Some("name.givenName"));
        let r = ResourceKind::User
            .resolve_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
            .map(|r| r.canonical_path());
        assert_eq!(r.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"));
        let r = ResourceKind::User
            .resolve_path("urn:ietf:params:scim:schemas:core:2.0:User:emails.value")
            .map(|r| r.canonical_path());
        assert_eq!(r.as_deref(), Some("emails.value"));
        assert!(ResourceKind::User.resolve_path("nope").is_none());
        assert!(ResourceKind::Group.resolve_path("userName").is_none());
        let id = ResourceKind::Group.resolve_path("id");
        assert!(matches!(id.map(|r| r.location), Some(AttrLocation::Common)));
    }

    #[test]
    fn paths_with_multi_byte_characters_resolve_to_nothing_without_panicking() {
        // Found by fuzzing (fuzz/regressions/filter, fuzz/regressions/patch).
        for path in ["maʚ", "diz\u{e9}playName", "ééé", "é", "urn\u{e9}:x", "uʚ:a:b", "emails.vé"] {
            assert_eq!(split_urn(path).0, None, "{path}");
            assert!(ResourceKind::User.resolve_path(path).is_none(), "{path}");
            assert!(ResourceKind::Group.resolve_path(path).is_none(), "{path}");
        }
        assert_eq!(split_urn("URN:x:é"), (Some("URN:x"), "é"));
    }

    #[test]
    fn schema_json_lists_sub_attributes_and_case_exactness() {
        let v = USER.to_json("http://x/Schemas/u");
        let emails = v["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == "emails"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(emails["multiValued"], json!(true));
        assert_eq!(emails["subAttributes"][0]["name"], json!("value"));
        assert_eq!(emails["subAttributes"][0]["caseExact"], json!(false));
    }
}
