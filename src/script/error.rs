//! Script failure reasons, one variant per SV Node `ScriptError_t` value this interpreter can
//! produce. [`ScriptError::name`] gives the exact spelling SV Node's `script_tests.json` uses, so
//! vector tests compare strings, and reject messages can quote SV Node's wording.

use thiserror::Error;

/// Why a script failed. Variant names follow SV Node's `SCRIPT_ERR_*` constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum ScriptError {
    #[error("unknown error")]
    UnknownError,
    #[error("script evaluated without error but finished with a false/empty top stack element")]
    EvalFalse,
    #[error("OP_RETURN was encountered")]
    OpReturn,
    #[error("script is too big")]
    ScriptSize,
    #[error("push value size limit exceeded")]
    PushSize,
    #[error("operation limit exceeded")]
    OpCount,
    #[error("stack size limit exceeded")]
    StackSize,
    #[error("signature count negative or greater than pubkey count")]
    SigCount,
    #[error("pubkey count negative or limit exceeded")]
    PubkeyCount,
    #[error("invalid operand size")]
    InvalidOperandSize,
    #[error("given operand is not a number within the valid range")]
    InvalidNumberRange,
    #[error("the requested encoding is impossible to satisfy")]
    ImpossibleEncoding,
    #[error("invalid OP_SPLIT range")]
    InvalidSplitRange,
    #[error("script number overflow")]
    ScriptNumOverflow,
    #[error("non-minimally encoded script number")]
    ScriptNumMinEncode,
    #[error("division by zero")]
    DivByZero,
    #[error("modulo by zero")]
    ModByZero,
    #[error("script failed an OP_VERIFY operation")]
    Verify,
    #[error("script failed an OP_EQUALVERIFY operation")]
    EqualVerify,
    #[error("script failed an OP_CHECKMULTISIGVERIFY operation")]
    CheckMultisigVerify,
    #[error("script failed an OP_CHECKSIGVERIFY operation")]
    CheckSigVerify,
    #[error("script failed an OP_NUMEQUALVERIFY operation")]
    NumEqualVerify,
    #[error("opcode missing or not understood")]
    BadOpcode,
    #[error("attempted to use a disabled opcode")]
    DisabledOpcode,
    #[error("operation not valid with the current stack size")]
    InvalidStackOperation,
    #[error("operation not valid with the current altstack size")]
    InvalidAltstackOperation,
    #[error("invalid OP_IF construction")]
    UnbalancedConditional,
    #[error("negative locktime")]
    NegativeLocktime,
    #[error("locktime requirement not satisfied")]
    UnsatisfiedLocktime,
    #[error("signature hash type missing or not understood")]
    SigHashType,
    #[error("non-canonical DER signature")]
    SigDer,
    #[error("data push larger than necessary")]
    MinimalData,
    #[error("only push operators allowed in signatures")]
    SigPushOnly,
    #[error("non-canonical signature: S value is unnecessarily high")]
    SigHighS,
    #[error("dummy CHECKMULTISIG argument must be zero")]
    SigNullDummy,
    #[error("public key is neither compressed or uncompressed")]
    PubkeyType,
    #[error("stack size must be exactly one after execution")]
    CleanStack,
    #[error("OP_IF/NOTIF argument must be minimal")]
    MinimalIf,
    #[error("signature must be zero for failed CHECK(MULTI)SIG operation")]
    SigNullFail,
    #[error("NOPx reserved for soft-fork upgrades")]
    DiscourageUpgradableNops,
    #[error("using non-compressed public key")]
    NonCompressedPubkey,
    #[error("illegal use of SIGHASH_FORKID")]
    IllegalForkId,
    /// SIGHASH_CHRONICLE before Chronicle (SV Node 1.2's `SCRIPT_ERR_ILLEGAL_CHRONICLE`).
    #[error("illegal use of SIGHASH_CHRONICLE")]
    IllegalChronicle,
    #[error("signature must use SIGHASH_FORKID")]
    MustUseForkId,
    /// Not a script verdict: evaluation passed its [`super::ScriptLimits::deadline`]. SV Node
    /// cancels such checks too and rejects with "too-long-validation-time"; ours to name.
    #[error("script evaluation passed its deadline")]
    TimedOut,
}

impl ScriptError {
    /// The name SV Node's `script_tests.json` uses for this error (`FormatScriptError` table of
    /// `src/test/script_tests.cpp`); mostly the `SCRIPT_ERR_` suffix, with SV Node's few exceptions.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::UnknownError => "UNKNOWN_ERROR",
            Self::EvalFalse => "EVAL_FALSE",
            Self::OpReturn => "OP_RETURN",
            Self::ScriptSize => "SCRIPT_SIZE",
            Self::PushSize => "PUSH_SIZE",
            Self::OpCount => "OP_COUNT",
            Self::StackSize => "STACK_SIZE",
            Self::SigCount => "SIG_COUNT",
            Self::PubkeyCount => "PUBKEY_COUNT",
            Self::InvalidOperandSize => "OPERAND_SIZE",
            Self::InvalidNumberRange => "INVALID_NUMBER_RANGE",
            Self::ImpossibleEncoding => "IMPOSSIBLE_ENCODING",
            Self::InvalidSplitRange => "SPLIT_RANGE",
            Self::ScriptNumOverflow => "SCRIPTNUM_OVERFLOW",
            Self::ScriptNumMinEncode => "SCRIPTNUM_MINENCODE",
            Self::DivByZero => "DIV_BY_ZERO",
            Self::ModByZero => "MOD_BY_ZERO",
            Self::Verify => "VERIFY",
            Self::EqualVerify => "EQUALVERIFY",
            Self::CheckMultisigVerify => "CHECKMULTISIGVERIFY",
            Self::CheckSigVerify => "CHECKSIGVERIFY",
            Self::NumEqualVerify => "NUMEQUALVERIFY",
            Self::BadOpcode => "BAD_OPCODE",
            Self::DisabledOpcode => "DISABLED_OPCODE",
            Self::InvalidStackOperation => "INVALID_STACK_OPERATION",
            Self::InvalidAltstackOperation => "INVALID_ALTSTACK_OPERATION",
            Self::UnbalancedConditional => "UNBALANCED_CONDITIONAL",
            Self::NegativeLocktime => "NEGATIVE_LOCKTIME",
            Self::UnsatisfiedLocktime => "UNSATISFIED_LOCKTIME",
            Self::SigHashType => "SIG_HASHTYPE",
            Self::SigDer => "SIG_DER",
            Self::MinimalData => "MINIMALDATA",
            Self::SigPushOnly => "SIG_PUSHONLY",
            Self::SigHighS => "SIG_HIGH_S",
            Self::SigNullDummy => "SIG_NULLDUMMY",
            Self::PubkeyType => "PUBKEYTYPE",
            Self::CleanStack => "CLEANSTACK",
            Self::MinimalIf => "MINIMALIF",
            Self::SigNullFail => "NULLFAIL",
            Self::DiscourageUpgradableNops => "DISCOURAGE_UPGRADABLE_NOPS",
            Self::NonCompressedPubkey => "NONCOMPRESSED_PUBKEY",
            Self::IllegalForkId => "ILLEGAL_FORKID",
            Self::IllegalChronicle => "ILLEGAL_CHRONICLE",
            Self::MustUseForkId => "MISSING_FORKID",
            Self::TimedOut => "TIMED_OUT",
        }
    }
}
