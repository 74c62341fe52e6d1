use super::*;

fn refused(filter: &str) -> FilterError {
    match validate(filter) {
        Ok(()) => panic!("accepted: {filter:?}"),
        Err(e) => e,
    }
}

/// `filter` is refused at byte `offset` with a message containing `why`.
fn assert_refused(filter: &str, offset: usize, why: &str) {
    let e = refused(filter);
    assert_eq!(e.offset, offset, "{filter:?}: {e}");
    assert!(e.message.contains(why), "{filter:?}: {e}");
    assert!(e.to_string().starts_with(&format!("at byte {offset}: ")));
}

#[test]
fn accepts_every_form_of_the_subset() {
    for ok in [
        "status eq 'pending'",
        "status ne 'pending'",
        "managedDeviceCount gt 2",
        "managedDeviceCount ge -2",
        "managedDeviceCount lt 2147483647",
        "managedDeviceCount le -2147483648",
        "displayName eq 'It''s'",
        "displayName eq ''''",
        "displayName eq ''",
        "displayName eq 'a and b or (c'",
        "displayName eq 'ünïcödé ✓'",
        "displayName eq '$filter=x&$select=id'",
        "insights eq null",
        "managedDeviceCount eq null",
        "dueDateTime eq null",
        "dueDateTime eq 2017-01-01T08:02:18.1994089Z",
        "dueDateTime lt 2017-01-01T00:02:18.1994089-08:00",
        "createdDateTime ge 2017-01-01T00:02:18+05:30",
        "id eq '5d630f12-0f12-5d63-120f-635d120f635d'",
        "id eq 5d630f12-0f12-5d63-120f-635d120f635d",
        "id eq DEADBEEF-0f12-5d63-120f-635d120f635d",
        "category eq 'advancedThreatProtection'",
        "priority eq 'high'",
        "applicablePlatform eq 'macOS'",
        "endpointSecurityPolicy eq 'antivirus'",
        "endpointSecurityPolicyProfile eq 'bitLocker'",
        "status eq 'aMemberGraphAddsLater'",
        "description eq 'd' and creator eq 'c' or creatorNotes eq 'n' and assignedTo eq 'a'",
        "not status eq 'pending'",
        "not (status eq 'pending')",
        "not not status eq 'pending'",
        "(status eq 'pending' or status eq 'active') and managedDeviceCount gt 0",
        "((((status eq 'pending'))))",
        "  status   eq   'pending'  ",
        "(status eq 'a')and(status eq 'b')",
    ] {
        assert_eq!(validate(ok), Ok(()), "{ok}");
    }
}

#[test]
fn nesting_and_clause_limits_are_exact() {
    let nested = |n: usize| format!("{}status eq 'a'{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(validate(&nested(MAX_DEPTH)), Ok(()));
    assert_refused(&nested(MAX_DEPTH + 1), MAX_DEPTH, "nested deeper than 16");
    let nots = |n: usize| format!("{}status eq 'a'", "not ".repeat(n));
    assert_eq!(validate(&nots(MAX_DEPTH)), Ok(()));
    assert_refused(&nots(MAX_DEPTH + 1), 4 * MAX_DEPTH, "nested deeper");
    // Mixed: parentheses and `not` count together.
    let mixed = format!(
        "{}{}status eq 'a'{}",
        "not ".repeat(8),
        "(".repeat(9),
        ")".repeat(9)
    );
    assert_refused(&mixed, 32 + 8, "nested deeper");
    // Far deeper than the stack could take if nesting were not bounded.
    assert_refused(&"(".repeat(100_000), MAX_DEPTH, "nested deeper");
    assert_refused(&"not ".repeat(50_000), 4 * MAX_DEPTH, "nested deeper");

    let clauses = |n: usize| vec!["status eq 'a'"; n].join(" or ");
    assert_eq!(validate(&clauses(MAX_CLAUSES)), Ok(()));
    let over = clauses(MAX_CLAUSES + 1);
    let last = over.rfind("status").expect("a clause");
    assert_refused(&over, last, "more than 32 comparisons");
}

#[test]
fn functions_lambdas_paths_and_options_are_refused_where_they_are() {
    for (filter, offset, why) in [
        (
            "startswith(displayName,'x')",
            0,
            "'startswith(' calls a function",
        ),
        (
            "status eq 'a' and contains(displayName,'x')",
            18,
            "functions are not supported",
        ),
        (
            "isof('microsoft.graph.appVulnerabilityTask')",
            0,
            "functions are not supported",
        ),
        (
            "intendedSettings/any(s: s/name eq 'x')",
            16,
            "lambdas (any/all)",
        ),
        ("intendedSettings eq 'x'", 0, "is a collection; lambdas"),
        ("status/x eq 'a'", 6, "navigation paths"),
        (
            "microsoft.graph.securityConfigurationTask/status eq 'a'",
            0,
            "qualified names",
        ),
        ("status eq 'a'&$select=id", 13, "'&' is not allowed"),
        ("$select=id", 0, "'$' is not allowed"),
        ("status eq @p1", 10, "parameter aliases"),
        ("status eq 'a' $top", 14, "'$' is not allowed"),
        ("status eq 'a'#frag", 13, "'#' is not allowed"),
        ("status eq 'a'; drop", 13, "';' is not allowed"),
        ("status eq \"a\"", 10, "single quotes"),
        (
            "status eq 'a' has 'b'",
            14,
            "expected 'and', 'or' or the end",
        ),
        ("status has 'a'", 7, "the operator 'has' is not supported"),
        (
            "status in ('a','b')",
            7,
            "the operator 'in' is not supported",
        ),
        (
            "managedDeviceCount add 1 eq 2",
            19,
            "the operator 'add' is not supported",
        ),
        ("status any 'a'", 7, "lambdas"),
        ("status\teq 'a'", 6, "only plain spaces"),
        ("status eq 'a' ＆ x", 14, "unexpected character '＆'"),
    ] {
        assert_refused(filter, offset, why);
    }
}

#[test]
fn unknown_properties_are_named_with_what_can_be_filtered() {
    let e = refused("status eq 'a' and nope eq 1");
    assert_eq!(e.offset, 18);
    assert!(e.message.contains("unknown property 'nope'"), "{e}");
    for name in ["displayName", "managedDeviceCount", "dueDateTime", "id"] {
        assert!(e.message.contains(name), "{e}");
    }
    assert!(!e.message.contains("intendedSettings"), "{e}");
    assert_refused("Status eq 'a'", 0, "did you mean 'status'?");
    assert_refused("status EQ 'a'", 7, "expected a comparison operator");
    assert_refused("status eq 'a' AND status eq 'b'", 14, "found 'AND'");
    assert_refused("NOT status eq 'a'", 0, "did you mean 'not'?");
    // Another task type's property is not this entity's.
    assert_refused("appName eq 'x'", 0, "unknown property 'appName'");
    assert_refused("@odata.type eq 'x'", 0, "'@' is not allowed");
    assert_refused(
        "odata.type eq 'x'",
        0,
        "neither a property name nor a literal",
    );
}

#[test]
fn unbalanced_quotes_and_parentheses_are_located() {
    assert_refused("status eq 'open", 10, "unbalanced quote");
    assert_refused("status eq 'it''s", 10, "unbalanced quote");
    assert_refused("status eq 'a''", 10, "unbalanced quote");
    assert_refused("(status eq 'a'", 0, "unbalanced '(': it is never closed");
    assert_refused("((status eq 'a')", 0, "unbalanced '('");
    assert_refused("status eq 'a')", 13, "unbalanced ')'");
    assert_refused("(status eq 'a'))", 15, "unbalanced ')'");
    assert_refused(")", 0, "unexpected ')'");
    assert_refused("()", 1, "unexpected ')'");
    assert_refused(
        "(status eq 'a' status eq 'b')",
        15,
        "expected 'and', 'or' or ')'",
    );
}

#[test]
fn incomplete_and_misplaced_parts_are_located() {
    assert_refused("", 0, "ends early");
    assert_refused("   ", 3, "ends early");
    assert_refused("status", 6, "ends after 'status'");
    assert_refused("status eq", 9, "ends after 'eq'");
    assert_refused("status eq 'a' and", 17, "ends early");
    assert_refused("status eq 'a' or ", 17, "ends early");
    assert_refused("not", 3, "ends early");
    assert_refused("and status eq 'a'", 0, "found 'and'");
    assert_refused("eq 'a'", 0, "found 'eq'");
    assert_refused("'pending' eq status", 0, "starts with a property name");
    assert_refused("2 eq managedDeviceCount", 0, "starts with a property name");
    assert_refused("status eq status", 10, "must be followed by a literal");
    assert_refused("status eq (", 10, "must be followed by a literal");
    assert_refused("status eq 'a' 'b'", 14, "expected 'and', 'or' or the end");
    assert_refused("status 'a'", 7, "expected a comparison operator");
}

#[test]
fn literals_must_be_valid_and_fit_the_property() {
    for (filter, offset, why) in [
        (
            "managedDeviceCount eq '2'",
            22,
            "is Edm.Int32 and cannot be compared with string",
        ),
        ("managedDeviceCount eq 2.5", 22, "Edm.Int32"),
        ("managedDeviceCount eq 1e3", 22, "Edm.Int32"),
        ("managedDeviceCount eq 2147483648", 22, "Edm.Int32"),
        (
            "managedDeviceCount eq 99999999999999999999",
            22,
            "Edm.Int32",
        ),
        ("managedDeviceCount eq true", 22, "Edm.Int32"),
        ("displayName eq 2", 15, "is Edm.String"),
        ("displayName eq true", 15, "is Edm.String"),
        (
            "displayName eq 5d630f12-0f12-5d63-120f-635d120f635d",
            15,
            "GUID",
        ),
        ("status eq 1", 10, "is deviceAppManagementTaskStatus"),
        (
            "dueDateTime eq '2017-01-01T08:02:18Z'",
            15,
            "is Edm.DateTimeOffset",
        ),
        ("dueDateTime eq 2017-01-01", 15, "not a valid literal"),
        (
            "dueDateTime eq 2017-01-01T08:02:18",
            15,
            "not a valid literal",
        ),
        (
            "dueDateTime eq 2017-13-01T08:02:18Z",
            15,
            "not a valid literal",
        ),
        ("managedDeviceCount eq 1e999", 22, "not a valid literal"),
        ("managedDeviceCount eq --1", 22, "not a valid literal"),
        ("managedDeviceCount eq 1.", 22, "not a valid literal"),
        ("managedDeviceCount eq 0x10", 22, "not a valid literal"),
        ("managedDeviceCount eq -", 22, "not a valid literal"),
        (
            "id eq 5d630f12-0f12-5d63-120f-635d120f635",
            6,
            "not a valid literal",
        ),
        (
            "id eq dd630f12-0f12-5d63-120f-635d120f635",
            6,
            "a GUID is 8-4-4-4-12 hex digits",
        ),
        (
            "id eq dd630f12-0f12-5d63-120f-635d120f635dx",
            6,
            "neither a property name nor a literal",
        ),
    ] {
        assert_refused(filter, offset, why);
    }
}

#[test]
fn errors_never_repeat_a_huge_input() {
    let long = format!("managedDeviceCount eq 1{}", "0".repeat(2000));
    let e = refused(&long);
    assert!(e.message.len() < 200, "{e}");
    let long = format!("displayName eq 2 and status eq {}", "9".repeat(2000));
    assert!(refused(&long).message.len() < 200);
}

#[test]
fn never_panics_on_any_prefix_or_byte_soup() {
    // Every prefix of valid and invalid filters, cut at every char boundary.
    let samples = [
        "(status eq 'It''s ✓' or not managedDeviceCount ge -2) and dueDateTime lt 2017-01-01T00:02:18.1994089-08:00",
        "id eq 5d630f12-0f12-5d63-120f-635d120f635d and startswith(displayName,'x')",
        "intendedSettings/any(s: s/name eq '$x')",
    ];
    for sample in samples {
        for (cut, _) in sample.char_indices() {
            let _ = validate(&sample[..cut]);
        }
        let _ = validate(sample);
    }
    // A deterministic soup of the characters that matter.
    let alphabet: Vec<char> = "() 'eqandortux0123456789-:.+TZé$/,".chars().collect();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..5_000 {
        let mut text = String::new();
        for _ in 0..24 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        if let Err(e) = validate(&text) {
            assert!(e.offset <= text.len(), "{text:?}: {e}");
            assert!(text.is_char_boundary(e.offset), "{text:?}: {e}");
        }
    }
}
