"""docs/openapi.json validates as OpenAPI 3.1 with openapi-spec-validator (the reference Python
validator: the document's structure, its JSON Schemas and every `$ref`).

`cargo test -p hookhub-tests --test openapi` keeps the file equal to the document the code
generates and serves, so validating the file validates what `GET /v1/openapi.json` answers.

Run: python3 -m pytest tests/openapi
"""

import json
import pathlib
import unittest

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

DOCUMENT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def load():
    with DOCUMENT.open(encoding="utf-8") as f:
        return json.load(f)


class OpenApiDocument(unittest.TestCase):
    def test_validates_as_openapi_3_1(self):
        spec = load()
        self.assertEqual(spec["openapi"], "3.1.0")
        # Raises with the first error; the explicit 3.1 validator, not a guess from the version.
        validate(spec, cls=OpenAPIV31SpecValidator)

    def test_every_error_is_reported(self):
        # All errors at once, so a broken document is fixed in one pass.
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in OpenAPIV31SpecValidator(load()).iter_errors()
        ]
        self.assertEqual(errors, [])

    def test_a_broken_document_is_refused(self):
        # The validator does check: a response without its required description fails.
        spec = load()
        del spec["paths"]["/v1/sources"]["get"]["responses"]["200"]["description"]
        self.assertTrue(list(OpenAPIV31SpecValidator(spec).iter_errors()))


if __name__ == "__main__":
    unittest.main()
