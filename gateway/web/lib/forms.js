// Forms generated from the JSON Schema the change catalog serves (the same pydantic model the
// server validates a change with): labelled fields, and each refusal of the server shown at the
// field it names.
import { clear, el } from "./dom.js";

let seq = 0;

function resolve(schema, root) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return (root.$defs || {})[name] || {};
  }
  return schema || {};
}

// anyOf [X, null] -> X, optional.
function unwrap(schema, root) {
  const s = resolve(schema, root);
  if (Array.isArray(s.anyOf)) {
    const real = s.anyOf.map((x) => resolve(x, root)).filter((x) => x.type !== "null");
    if (real.length === 1) return { ...real[0], ...pick(s), nullable: true };
  }
  return s;
}

function pick(s) {
  const out = {};
  for (const k of ["title", "description", "default"]) if (k in s) out[k] = s[k];
  return out;
}

function words(name, schema) {
  const title = schema.title && schema.title.toLowerCase() !== name ? schema.title : null;
  return title || name.replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
}

// A form part for `schema` (an object). Returns { node, read(), showErrors(detail), fields }.
// `values` fills it in (an edit); `hidden` names fields not to show.
export function schemaForm(schema, { values = {}, idPrefix = "f" } = {}) {
  const root = schema;
  const fields = new Map(); // dotted path -> { input, error, kind, required }
  const prefix = `${idPrefix}-${++seq}`;

  function build(obj, path, vals) {
    const s = resolve(obj, root);
    const required = new Set(s.required || []);
    const parts = [];
    for (const [name, raw] of Object.entries(s.properties || {})) {
      const sub = unwrap(raw, root);
      const dotted = path ? `${path}.${name}` : name;
      const value = vals ? vals[name] : undefined;
      if (sub.type === "object" || (sub.properties && !sub.type)) {
        parts.push(el("fieldset", { class: "sub" }, el("legend", {}, words(name, {})),
          build(sub, dotted, value || {})));
        continue;
      }
      if (sub.const !== undefined) continue;
      const id = `${prefix}-${dotted.replaceAll(".", "-")}`;
      const isRequired = required.has(name) && !sub.nullable;
      let input;
      if (Array.isArray(sub.enum)) {
        input = el("select", { id, name: dotted },
          isRequired ? null : el("option", { value: "" }, "—"),
          sub.enum.map((v) => el("option", { value: String(v) }, String(v))));
      } else if (sub.type === "integer" || sub.type === "number") {
        input = el("input", { id, name: dotted, type: "number", inputmode: "numeric",
          min: sub.minimum, max: sub.maximum, step: sub.type === "integer" ? 1 : "any" });
      } else if (sub.type === "array") {
        input = el("input", { id, name: dotted, placeholder: "comma-separated" });
      } else {
        const secret = sub.format === "password" || sub.writeOnly;
        const long = (sub.maxLength || 0) > 300;
        input = long
          ? el("textarea", { id, name: dotted, rows: 3, maxlength: sub.maxLength })
          : el("input", { id, name: dotted, type: secret ? "password" : "text",
            maxlength: sub.maxLength, autocomplete: secret ? "new-password" : "off" });
      }
      if (isRequired) input.required = true;
      const initial = value !== undefined && value !== null ? value : sub.default;
      if (initial !== undefined && initial !== null) {
        input.value = Array.isArray(initial) ? initial.join(", ") : String(initial);
      }
      const errorId = `${id}-error`;
      const error = el("p", { id: errorId, class: "field-error", role: "alert", hidden: true });
      input.setAttribute("aria-describedby", errorId);
      const hint = sub.description ? el("span", { class: "hint" }, ` (${sub.description})`) : "";
      fields.set(dotted, { input, error, type: sub.type, required: isRequired });
      parts.push(el("div", { class: "field", dataset: { field: dotted } },
        el("label", { for: id }, words(name, sub), isRequired ? " *" : "", hint), input, error));
    }
    return parts;
  }

  const node = el("div", { class: "schema-form" }, build(schema, "", values));

  function read() {
    const out = {};
    for (const [path, f] of fields) {
      const text = f.input.value.trim();
      if (text === "" && !f.required) continue;
      let value = f.input.type === "password" ? f.input.value : text;
      if (f.type === "integer" || f.type === "number") value = text === "" ? text : Number(text);
      else if (f.type === "array") value = text.split(",").map((x) => x.trim()).filter(Boolean);
      const keys = path.split(".");
      let at = out;
      for (const k of keys.slice(0, -1)) at = at[k] ??= {};
      at[keys.at(-1)] = value;
    }
    return out;
  }

  // The server's refusals (ApiError.detail: [{field, problem}]) at their fields; returns those
  // no field of this form shows (to show above it).
  function showErrors(detail, { strip = [] } = {}) {
    for (const f of fields.values()) {
      f.error.hidden = true;
      f.error.textContent = "";
      f.input.removeAttribute("aria-invalid");
    }
    const rest = [];
    for (const d of Array.isArray(detail) ? detail : []) {
      let name = String(d.field || "");
      for (const p of strip) if (name.startsWith(p)) name = name.slice(p.length);
      const f = fields.get(name);
      if (!f) {
        rest.push(d.problem || String(d));
        continue;
      }
      const problem = String(d.problem || "");
      f.error.textContent = problem.startsWith(`${name}: `) ? problem.slice(name.length + 2) : problem;
      f.error.hidden = false;
      f.input.setAttribute("aria-invalid", "true");
    }
    return rest;
  }

  return { node, read, showErrors, fields, clear: () => clear(node) };
}
