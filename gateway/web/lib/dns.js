// DNS record forms: which of a record's fields its type uses (MX and SRV a priority, SRV a
// weight and port, CAA flags and a tag), so the form shows only those. A hint for the eye: the
// server's DnsRecord model checks the same rules and says which field is wrong.
const USED_BY = {
  priority: ["MX", "SRV"], weight: ["SRV"], port: ["SRV"], flags: ["CAA"], tag: ["CAA"],
};

export function dnsFieldRules(form) {
  for (const [path, f] of form.fields) {
    if (!path.endsWith("type") || f.input.tagName !== "SELECT") continue;
    const prefix = path.slice(0, -"type".length);
    const apply = () => {
      const type = f.input.value;
      for (const [name, types] of Object.entries(USED_BY)) {
        const other = form.fields.get(prefix + name);
        if (!other) continue;
        const used = types.includes(type);
        other.input.closest(".field").hidden = !used;
        if (!used) other.input.value = "";
      }
    };
    f.input.addEventListener("change", apply);
    apply();
  }
}
