"""The CEL side of the cross-field rules: ``CEL_RULES``, mirrored into the CRD as
``x-kubernetes-validations`` (the apiserver refuses bad objects at ``kubectl apply``); the pydantic
validators of the models are their twins (``kubellm plan`` refuses the same files offline)."""

from __future__ import annotations

from kubellm.api.v1alpha1.serving import refused_arg_forms


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def _cel_args_rule() -> str:
    """CEL twin of ``LLMDeploymentSpec._args``: exact names and ``=``/``.`` prefixes only
    (``startsWith`` over a constant list keeps the estimated cost far below the budget)."""
    exact, prefixes = refused_arg_forms()
    return (f"self.all(a, !(a in {_cel_list(exact)}) && "
            f"!{_cel_list(prefixes)}.exists(p, a.startsWith(p)))")


# CEL rules mirrored into the CRD, keyed "<Kind>.<wire path>" (the path of the schema node the rules
# sit on; "LLMDeployment.spec.context.maxModelLen" is spec.context.maxModelLen). Keep them in step
# with the pydantic validators above: tests/unit/test_api.py checks both refuse the same objects.
CEL_RULES: dict[str, list[dict[str, str]]] = {
    "LLMDeployment.spec.args": [
        {
            "rule": _cel_args_rule(),
            "message": (
                "args: a flag that is set by kubellm or not permitted (it selects the model, "
                "revision, source, code or listening address); remove it or set the matching "
                "spec field"
            ),
            "reason": "FieldValueForbidden",
        },
    ],
    "LLMDeployment.spec": [
        {
            "rule": "!(self.quantization == 'gguf' && self.runtime == 'tgi')",
            "message": "runtime tgi cannot serve quantization gguf (use runtime vllm or auto)",
            "fieldPath": ".runtime",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": "!has(self.model.file) || self.quantization in ['auto', 'gguf']",
            "message": "model.file selects a GGUF file: set quantization to gguf or auto",
            "fieldPath": ".quantization",
            "reason": "FieldValueInvalid",
        },
    ],
    "LLMDeployment.spec.evaluation": [
        {
            "rule": "has(self.checks) != has(self.checksFrom)",
            "message": "evaluation: set exactly one of checks or checksFrom",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": "!has(self.tasks) && !has(self.load)",
            "message": "evaluation.tasks and evaluation.load are not implemented yet; remove them",
            "reason": "FieldValueForbidden",
        },
    ],
    "LLMDeployment.spec.evaluation.checks[*]": [
        {
            "rule": "has(self.prompt) != has(self.messages)",
            "message": "a check sets exactly one of prompt or messages",
            "reason": "FieldValueInvalid",
        },
    ],
    "LLMDeployment.spec.evaluation.checks[*].expect": [
        {
            "rule": ("[has(self.contains), has(self.regex), has(self.exact), "
                     "has(self.jsonSchema), has(self.numeric)].filter(x, x).size() == 1"),
            "message": "expect: set exactly one of contains, regex, exact, jsonSchema, numeric",
            "reason": "FieldValueInvalid",
        },
    ],
    "LLMDeployment.spec.model.parameters": [
        {
            "rule": (
                "type(self) == int ? self > 0 : "
                "self.matches('^ *[0-9][0-9_]*([.][0-9]+)?[KkMmBbTt]? *$')"
            ),
            "message": "parameters must be a positive integer or a count such as 8B, 70.6B, 560M",
        },
    ],
    "LLMDeployment.spec.context.maxModelLen": [
        {
            "rule": "type(self) == string ? self == 'auto' : (self >= 16 && self <= 10485760)",
            "message": "maxModelLen must be an integer between 16 and 10485760, or auto",
        },
    ],
    "LLMDeployment.spec.gpu.count": [
        {
            "rule": "type(self) == string ? self == 'auto' : (self >= 1 && self <= 1024)",
            "message": "gpu.count must be an integer of at least 1, or auto",
        },
    ],
    "LicensePolicy.spec": [
        {
            "rule": (
                "!has(self.allowedLicenses) || !has(self.deniedLicenses) || "
                "!self.allowedLicenses.exists(l, l in self.deniedLicenses)"
            ),
            "message": "a licence cannot be both in allowedLicenses and in deniedLicenses",
            "fieldPath": ".allowedLicenses",
            "reason": "FieldValueInvalid",
        },
    ],
}
