"""Checks the manifests beside this file against KServe's CRD schemas, with unknown fields made
errors (Kubernetes would silently drop a misspelt field instead).

Usage: python check_crds.py SERVINGRUNTIMES_CRD INFERENCESERVICES_CRD MANIFEST...
The CRDs are KServe's config/crd/full/serving.kserve.io_{servingruntimes,inferenceservices}.yaml
(not kept here: about 2 MB). Needs PyYAML and jsonschema. Exits 1 naming each error.
"""
import sys

import jsonschema
import yaml


def strict(schema):
    if isinstance(schema, dict):
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


def main():
    schemas = {}
    for path in sys.argv[1:3]:
        with open(path) as f:
            crd = yaml.safe_load(f)
        for v in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = strict(v["schema"]["openAPIV3Schema"])
    failed = False
    for path in sys.argv[3:]:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                schema = schemas.get((doc.get("apiVersion"), doc.get("kind")))
                if schema is None:
                    print(f"{path}: no schema for {doc.get('apiVersion')} {doc.get('kind')}")
                    failed = True
                    continue
                # metadata is Kubernetes' ObjectMeta, which the CRD leaves open.
                schema["properties"]["metadata"] = {"type": "object"}
                errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
                print(f"{path}: {doc['kind']} {'OK' if not errors else f'{len(errors)} error(s)'}")
                for e in errors:
                    print(f"  {'.'.join(map(str, e.path))}: {e.message}")
                failed |= bool(errors)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
