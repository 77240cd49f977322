//! FHIR semantics for the `heart-fhir` profile: the HEART / SMART on FHIR scope grammar and FHIR
//! resource types (HEART-FHIR-01..07, HEART-FHIRUMA-01, -02).
//!
//! Access scopes are `{context}/{type}.{access}`: context `patient`, `user` (HEART) or `system`
//! (SMART); type a FHIR R4 resource type or `*`; access `read`, `write` or `*` (HEART, SMART v1),
//! or SMART v2's `c`, `r`, `u`, `d`, `s` letters in that order (`rs`, `cud`, `cruds`). Labels:
//! `conf/{N|R|V|…}` (confidentiality), `sens/{code}` (sensitivity) and `btg` (break the glass).
//! Hand-written: no maintained Rust crate parses these scopes.

use std::fmt;

/// FHIR R4 resource types (http://hl7.org/fhir/R4/resourcelist.html).
pub const RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// The prefix of a FHIR resource `type` URI in resource registration.
pub const TYPE_URI_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";

/// What an access scope allows, as SMART v2 letters: create, read, update, delete, search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub create: bool,
    pub read: bool,
    pub update: bool,
    pub delete: bool,
    pub search: bool,
}

impl Access {
    const ALL: Access = Access {
        create: true,
        read: true,
        update: true,
        delete: true,
        search: true,
    };
    /// HEART / SMART v1 `read`: read and search.
    const READ: Access = Access {
        create: false,
        read: true,
        update: false,
        delete: false,
        search: true,
    };
    /// HEART / SMART v1 `write`: create, update, delete.
    const WRITE: Access = Access {
        create: true,
        read: false,
        update: true,
        delete: true,
        search: false,
    };

    /// Everything `other` allows, this allows too.
    pub fn includes(&self, other: &Access) -> bool {
        (self.create || !other.create)
            && (self.read || !other.read)
            && (self.update || !other.update)
            && (self.delete || !other.delete)
            && (self.search || !other.search)
    }
}

/// A parsed scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FhirScope {
    /// `{context}/{type}.{access}`; `resource_type` `None` is `*`.
    Access {
        context: String,
        resource_type: Option<String>,
        access: Access,
    },
    /// `conf/{code}`.
    Confidentiality(String),
    /// `sens/{code}`.
    Sensitivity(String),
    /// `btg`.
    BreakTheGlass,
}

/// Why a scope is not a FHIR scope: a caller-facing description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeError(pub String);

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(scope: &str, why: &str) -> ScopeError {
    ScopeError(format!("`{scope}` is not a FHIR scope: {why}"))
}

/// Parse one scope.
pub fn parse(scope: &str) -> Result<FhirScope, ScopeError> {
    if scope == "btg" {
        return Ok(FhirScope::BreakTheGlass);
    }
    if let Some(code) = scope.strip_prefix("conf/") {
        return match code {
            "U" | "L" | "M" | "N" | "R" | "V" => Ok(FhirScope::Confidentiality(code.to_string())),
            _ => Err(err(
                scope,
                "a confidentiality code is one of U, L, M, N, R, V",
            )),
        };
    }
    if let Some(code) = scope.strip_prefix("sens/") {
        let ok = !code.is_empty()
            && code.len() <= 64
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return if ok {
            Ok(FhirScope::Sensitivity(code.to_string()))
        } else {
            Err(err(
                scope,
                "a sensitivity code is letters, digits, `-` or `_`",
            ))
        };
    }
    let Some((context, rest)) = scope.split_once('/') else {
        return Err(err(
            scope,
            "expected `patient/`, `user/` or `system/` then `{type}.{access}` (or `conf/…`, `sens/…`, `btg`)",
        ));
    };
    if !["patient", "user", "system"].contains(&context) {
        return Err(err(scope, "the context is `patient`, `user` or `system`"));
    }
    if rest.contains('?') {
        return Err(err(
            scope,
            "SMART v2 search parameters in scopes are not supported",
        ));
    }
    let Some((resource_type, access)) = rest.rsplit_once('.') else {
        return Err(err(scope, "expected `{type}.{access}` after the context"));
    };
    let resource_type = match resource_type {
        "*" => None,
        t if RESOURCE_TYPES.contains(&t) => Some(t.to_string()),
        _ => {
            return Err(err(
                scope,
                "the resource type is a FHIR R4 resource type or `*`",
            ));
        }
    };
    let access = match access {
        "read" => Access::READ,
        "write" => Access::WRITE,
        "*" => Access::ALL,
        letters => smart_v2(letters).ok_or_else(|| {
            err(
                scope,
                "the access is `read`, `write`, `*` or SMART v2 letters from `cruds`, in that order",
            )
        })?,
    };
    Ok(FhirScope::Access {
        context: context.to_string(),
        resource_type,
        access,
    })
}

/// SMART v2 access letters: a non-empty subsequence of `cruds`.
fn smart_v2(letters: &str) -> Option<Access> {
    if letters.is_empty() {
        return None;
    }
    let mut rest = "cruds";
    let mut a = Access {
        create: false,
        read: false,
        update: false,
        delete: false,
        search: false,
    };
    for ch in letters.chars() {
        let at = rest.find(ch)?;
        rest = &rest[at + 1..];
        match ch {
            'c' => a.create = true,
            'r' => a.read = true,
            'u' => a.update = true,
            'd' => a.delete = true,
            _ => a.search = true,
        }
    }
    Some(a)
}

/// A resource registration `type` under `heart-fhir`: a FHIR R4 resource type, bare or as its
/// `http://hl7.org/fhir/StructureDefinition/` URI. Returns the type name.
pub fn resource_type(t: &str) -> Result<&str, ScopeError> {
    let name = t.strip_prefix(TYPE_URI_PREFIX).unwrap_or(t);
    if RESOURCE_TYPES.contains(&name) {
        Ok(name)
    } else {
        Err(ScopeError(format!(
            "`{t}` is not a FHIR R4 resource type (a type name such as `Observation`, or `{TYPE_URI_PREFIX}Observation`)"
        )))
    }
}

/// Whether the scope `granted` allows what `wanted` asks for (the mapping policy templates use:
/// sharing `patient/*.read` shares `patient/Observation.rs`, not `patient/Observation.write`).
pub fn covers(granted: &FhirScope, wanted: &FhirScope) -> bool {
    match (granted, wanted) {
        (
            FhirScope::Access {
                context: gc,
                resource_type: gt,
                access: ga,
            },
            FhirScope::Access {
                context: wc,
                resource_type: wt,
                access: wa,
            },
        ) => gc == wc && (gt.is_none() || gt == wt) && ga.includes(wa),
        (g, w) => g == w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // HEART-FHIR-01..07: the grammar, each part refused with its reason.
    #[test]
    fn scope_grammar() {
        for ok in [
            "patient/Observation.read",
            "patient/*.*",
            "user/*.write",
            "system/Patient.read",
            "patient/Observation.rs",
            "patient/Observation.cruds",
            "patient/Observation.cud",
            "conf/N",
            "sens/ETH",
            "btg",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("patient/Observation", "`{type}.{access}`"),
            ("doctor/Observation.read", "context"),
            ("patient/Observations.read", "resource type"),
            ("patient/Observation.sr", "SMART v2"),
            ("patient/Observation.x", "SMART v2"),
            (
                "patient/Observation.rs?category=laboratory",
                "search parameters",
            ),
            ("conf/X", "confidentiality"),
            ("sens/", "sensitivity"),
            ("read", "expected"),
        ] {
            let e = parse(bad).err().map(|e| e.0).unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    // The mapping between FHIR scopes: v1 `read` = v2 `rs`, `*` covers every type and access.
    #[test]
    fn coverage() {
        let p = |s: &str| parse(s).unwrap_or(FhirScope::BreakTheGlass);
        assert!(covers(&p("patient/*.read"), &p("patient/Observation.rs")));
        assert!(covers(&p("patient/*.read"), &p("patient/Observation.read")));
        assert!(!covers(
            &p("patient/*.read"),
            &p("patient/Observation.write")
        ));
        assert!(!covers(
            &p("patient/Observation.read"),
            &p("patient/Patient.read")
        ));
        assert!(!covers(&p("patient/*.*"), &p("user/Observation.read")));
        assert!(covers(&p("patient/*.*"), &p("patient/Observation.cud")));
        assert!(covers(&p("sens/ETH"), &p("sens/ETH")));
        assert!(!covers(&p("sens/ETH"), &p("sens/PSY")));
    }

    // HEART-FHIRUMA-01: registration types.
    #[test]
    fn resource_types() {
        assert_eq!(resource_type("Observation").ok(), Some("Observation"));
        assert_eq!(
            resource_type("http://hl7.org/fhir/StructureDefinition/Patient").ok(),
            Some("Patient")
        );
        assert!(resource_type("https://rs.example/t/lab").is_err());
        assert!(resource_type("Observations").is_err());
    }
}
