# seed.lib: instances from Nix modules, in plain Nix (builtins only, no nixpkgs).
#
#   seeds.web = seed.lib.mkSeed { name = "web"; module = ./web.nix; };
#
# A module is an attribute set, a function of { config, lib, pkgs, name, ... } giving
# one, a path to a file holding either, or a list of modules; `imports` adds more.
# Only the `seed.*` options are read here; anything else (services.nginx, ...) is kept
# for a NixOS evaluation and ignored by seed. `lib.mkDefault`, `mkForce`, `mkOverride`,
# `mkIf` and `mkMerge` work as in NixOS.
#
# mkSeed gives:
#   spec   the instance as seeds.json holds it (what `seed eval` and the node read; seed
#          checks it again in C, so its errors are the same in every front end);
#   meta   what `seed eval --json` prints for the instance: every option typed, coerced
#          and defaulted as seed does it, with the identity. Every error at once, each
#          with its option path (seed.expose.http.port). namespace is null unless `uri`
#          is given: a flake cannot know the address it is fetched by.
#   config the merged configuration of all modules.
let
  b = builtins;
  inherit (b) isAttrs isList isString isInt isBool isFloat isFunction isPath attrNames
    concatMap concatStringsSep elem filter foldl' length head stringLength substring match
    toJSON hasAttr mapAttrs listToAttrs genList typeOf;

  # ---- definitions and their wrappers ----
  mkOverride = priority: content: { _seedType = "override"; inherit priority content; };
  mkDefault = mkOverride 1000;
  mkForce = mkOverride 50;
  mkIf = condition: content: { _seedType = "if"; inherit condition content; };
  mkMerge = contents: { _seedType = "merge"; inherit contents; };

  isWrapped = v: isAttrs v && v ? _seedType;

  # A definition { file, value } into plain ones { file, value, priority }.
  expand = def:
    let v = def.value; in
    if isWrapped v then
      if v._seedType == "if" then
        (if !isBool v.condition
         then throw "${def.file}: the condition of mkIf must be true or false, found ${describe v.condition}"
         else if v.condition then expand (def // { value = v.content; }) else [ ])
      else if v._seedType == "merge" then concatMap (c: expand (def // { value = c; })) v.contents
      else if v._seedType == "override" then
        map (d: d // { priority = v.priority; }) (expand (def // { value = v.content; }))
      else [ (def // { priority = def.priority or 100; }) ]
    else [ (def // { priority = def.priority or 100; }) ];

  # The definitions that count: those of the highest priority (the lowest number).
  winners = defs:
    let
      all = concatMap expand defs;
      best = foldl' (m: d: if d.priority < m then d.priority else m) 100000 all;
    in filter (d: d.priority == best) all;

  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];

  # Merge definitions of one option. Attribute sets merge member by member (as
  # submodules do); anything else must be defined once, or equally everywhere. Two
  # views: `clean` drops options whose every definition is a false mkIf (for the
  # spec); the other keeps every name lazily (for `config`, which modules read while
  # their own mkIf conditions are being decided) and fails only when such an option
  # is read.
  mergeDefs = clean: path: defs:
    let ds = winners defs; in
    if length ds == 1 then mergeOne clean path (head ds)
    else {
      absent = ds == [ ];
      value =
        if ds == [ ] then throw "${path} is read, but every definition of it is under a false mkIf"
        else if b.all (d: isAttrs d.value && !(isDerivationLike d.value)) ds then
          mergeAttrs clean path ds
        else
          let values = unique (map (d: d.value) ds); in
          if length values == 1 then (if clean then plain (head values) else head values)
          else throw ("${path} has conflicting definitions: "
            + concatStringsSep ", " (map (d: "${describe d.value} in ${d.file}") ds)
            + " (use lib.mkForce or lib.mkDefault to choose)");
    };

  # One definition, the common case, without the bookkeeping of several: wrappers
  # (mkIf, mkMerge, ...) still go through mergeDefs wherever they are.
  mergeOne = clean: path: def:
    let v = def.value; in
    if isWrapped v then mergeDefs clean path [ def ]
    else if isAttrs v && !(isDerivationLike v) then {
      absent = false;
      value =
        if clean then
          let
            rs = mapAttrs (n: x: if isWrapped x then mergeDefs true (key path n) [{ inherit (def) file; value = x; }] else null) v;
            kept = filter (n: rs.${n} == null || !rs.${n}.absent) (attrNames v);
          in
          listToAttrs (map (n: {
            name = n;
            value = if rs.${n} == null then (mergeOne true (key path n) { inherit (def) file; value = v.${n}; }).value else rs.${n}.value;
          }) kept)
        else mapAttrs (n: x: (mergeOne false (key path n) { inherit (def) file; value = x; }).value) v;
    }
    else { absent = false; value = if clean then plain v else v; };

  # Paths as strings, as JSON holds them (a path of the flake is in the store already).
  plain = v: if isPath v then toString v else if isList v then map plain v else v;

  mergeAttrs = clean: path: defs:
    let
      names = unique (concatMap (d: attrNames d.value) defs);
      one = n: mergeDefs clean (key path n)
        (map (d: { inherit (d) file; value = d.value.${n}; }) (filter (d: d.value ? ${n}) defs));
      rs = listToAttrs (map (n: { name = n; value = one n; }) names);
    in
    if clean then listToAttrs (concatMap (n: if rs.${n}.absent then [ ] else [{ name = n; value = rs.${n}.value; }]) names)
    else mapAttrs (_: r: r.value) rs;

  isDerivationLike = v: (v.type or null) == "derivation";

  # ---- modules ----
  # Every module, with the file it came from, imports followed.
  collect = args: file: m:
    if isList m then concatMap (collect args file) m
    else if isPath m || isString m then collect args (toString m) (import m)
    else if isFunction m then collect args file (m args)
    else if isAttrs m then
      let
        imports = m.imports or [ ];
        body = if m ? config || m ? options then (m.config or { }) else removeAttrs m [ "imports" "_file" "key" ];
        here = m._file or file;
      in [{ file = here; config = body; }] ++ concatMap (collect args here) imports
    else throw "${file}: a module must be an attribute set or a function returning one, found ${describe m}";

  # ---- describing values, as seed's messages do ----
  quote = s:
    let t = if stringLength s > 48 then substring 0 48 s + "…" else s; in toJSON t;
  describe = v:
    if isString v then quote v
    else if isInt v then toString v
    else if isFloat v then toString v
    else if isBool v then (if v then "true" else "false")
    else if v == null then "null"
    else if isList v then (if v == [ ] then "an empty array"
      else "an array of ${toString (length v)} element${if length v == 1 then "" else "s"}")
    else if isAttrs v then (if v == { } then "an empty object" else "an object")
    else if isPath v then "the path ${toString v}"
    else if isFunction v then "a function"
    else typeOf v;

  # ---- checks: each gives { ok, value, errors } ----
  # An option path one key deeper, the key quoted as seed quotes it when it is not plain.
  key = path: k:
    path + "." + (if match "[A-Za-z0-9_-]+" k != null && stringLength k <= 64 then k
      else "\"" + b.replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] k + "\"");
  err = path: msg: [ "${path}: ${msg}" ];
  typeErr = path: v: expected: err path "expected ${expected}, found ${describe v}";
  good = value: { ok = true; inherit value; errors = [ ]; };
  bad = errors: { ok = false; value = null; inherit errors; };

  listWords = concatStringsSep ", ";

  lower = s: b.replaceStrings
    [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ]
    [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ] s;
  min2 = x: y: if x < y then x else y;

  # Levenshtein distance, case-insensitive, as seed's suggestions measure it.
  editDistance = a: c:
    let
      xs = chars (lower a);
      ys = chars (lower c);
      lb = length ys;
      step = row: x:
        let
          next = foldl' (acc: j:
            let
              cost = if x == b.elemAt ys (j - 1) then 0 else 1;
              v = min2 (min2 (b.elemAt row j + 1) (b.elemAt acc (j - 1) + 1)) (b.elemAt row (j - 1) + cost);
            in acc ++ [ v ]) [ (head row + 1) ] (genList (j: j + 1) lb);
        in next;
    in
    if stringLength a > 64 || stringLength c > 64 then 255
    else b.elemAt (foldl' step (genList (j: j) (lb + 1)) xs) lb;

  # The nearest word: a couple of edits (fewer for short words), or an abbreviation.
  nearest = key: words:
    let
      best = foldl' (acc: w: let d = editDistance key w; in if d < acc.d then { inherit w d; } else acc)
        { w = null; d = 255; } words;
      len = stringLength key;
      limit = if len <= 3 then 1 else if len <= 6 then 2 else 3;
      abbrev = filter (w: len >= 3 && lower (substring 0 len w) == lower key) words;
    in
    if best.d <= limit then best.w
    else if abbrev != [ ] then head abbrev
    else null;

  checkKeys = path: v: allowed:
    concatMap (k:
      if elem k allowed then [ ]
      else
        let n = nearest k allowed; in
        err (key path k) (if n != null
          then "unknown option; did you mean ${toJSON n}? (expected one of: ${listWords allowed})"
          else "unknown option (expected one of: ${listWords allowed})")) (attrNames v);

  enum = path: what: words: v:
    if !isString v then bad (typeErr path v "a ${what} (one of: ${listWords words})")
    else if elem v words then good v
    else
      let n = nearest v words; in
      bad (err path (if n != null
        then "unknown ${what} ${describe v}; did you mean ${toJSON n}? (expected one of: ${listWords words})"
        else "unknown ${what} ${describe v} (expected one of: ${listWords words})"));

  chars = s: genList (i: substring i 1 s) (stringLength s);

  dnsLabel = s: max:
    if s == "" then "must not be empty"
    else if stringLength s > max then
      (if max == 58 then "is too long: at most 58 characters, so that seed-<name> is a DNS label"
       else "is too long for a DNS label")
    else if b.any (c: match "[A-Z]" c != null) (chars s) then "must be lower-case (a DNS label: a-z, 0-9 and '-')"
    else if match "[a-z0-9-]*" s == null then "may only contain a-z, 0-9 and '-' (a DNS label)"
    else if substring 0 1 s == "-" || substring (stringLength s - 1) 1 s == "-"
    then "must start and end with a letter or digit (a DNS label)"
    else null;

  hostname = s:
    let labels = b.filter isString (b.split "\\." s); in
    if s == "" then "must not be empty"
    else if stringLength s > 253 then "is too long for a DNS name (at most 253 characters)"
    else if match "[A-Za-z0-9.-]*" s == null then "may only contain letters, digits, '-' and '.' (a DNS name)"
    else if b.any (l: l == "") labels then "has an empty label (a DNS name like seed-db or db.example.com)"
    else if b.any (l: stringLength l > 63) labels then "has a label longer than 63 characters"
    else if b.any (l: substring 0 1 l == "-" || substring (stringLength l - 1) 1 l == "-") labels
    then "has a label that starts or ends with '-'"
    else null;

  processName = s:
    if s == "" then "must not be empty"
    else if stringLength s > 63 then "is too long (at most 63 characters)"
    else if match "[A-Za-z0-9].*" s == null then "must start with a letter or digit"
    else if match "[A-Za-z0-9._-]*" s == null then "may only contain letters, digits, '-', '_' and '.'"
    else null;

  connectName = s:
    if s == "" then "must not be empty"
    else if stringLength s > 63 then "is too long (at most 63 characters)"
    else if match "[A-Za-z].*" s == null then "must start with a letter (it becomes $SEED_<NAME>_HOST)"
    else if match "[A-Za-z0-9_-]*" s == null
    then "may only contain letters, digits, '-' and '_' (it becomes $SEED_<NAME>_HOST)"
    else null;

  envName = s:
    if s == "" then "must not be empty"
    else if stringLength s > 255 then "is too long (at most 255 characters)"
    else if match "[0-9].*" s != null then "must not start with a digit"
    else if match "[A-Za-z0-9_.-]*" s == null then "may only contain letters, digits, '_', '.' and '-'"
    else if substring 0 5 s == "SEED_" then "uses the prefix SEED_, which is reserved for variables seed sets"
    else null;

  userPart = s:
    if match "[0-9]+" s != null then stringLength s <= 10 && (stringLength s < 10 || s < "4294967295")
    else stringLength s >= 1 && stringLength s <= 32 && match "[a-z_][a-z0-9_-]*[$]?" s != null;
  user = s:
    let parts = b.split ":" s; ps = filter isString parts; in
    if length ps > 2 || !(b.all userPart ps) || (length ps == 2 && b.elemAt ps 1 == "")
    then "must be a user name or uid, optionally followed by :group or :gid (like \"www-data\", \"1000\" or \"1000:1000\")"
    else null;

  # A regular expression of text without control characters (Nix strings have no \x escapes).
  noControls = b.fromJSON "\"[^\\u0001-\\u001f]*\"";
  absPath = s:
    if substring 0 1 s != "/" then "must be an absolute path"
    else if stringLength s >= 4096 then "is too long (at most 4095 bytes)"
    else if match noControls s == null then "must not contain control characters"
    else null;

  # A path is p or lies below it (component-wise).
  under = path: p: path == p || substring 0 (stringLength p + 1) path == p + "/";

  # /a//b/c/ -> /a/b/c; "." and ".." are refused, and so are the paths the sandbox owns.
  mountPoint = s:
    let
      why = absPath s;
      parts = filter (p: isString p && p != "") (b.split "/+" s);
      norm = "/" + concatStringsSep "/" parts;
      reservedTree = [ "/proc" "/sys" "/dev" "/run/seed" "/etc/seed" "/seed/bin" "/seed/tpm" ];
      reservedExact = [ "/" "/run" "/etc" "/seed" "/seed/storage" ];
      generated = [ "/etc/hosts" "/etc/hostname" "/etc/resolv.conf" "/etc/passwd" "/etc/group" "/etc/nsswitch.conf" ];
    in
    if why != null then { inherit why; }
    else if elem "." parts || elem ".." parts then { why = "must not contain \".\" or \"..\" components"; }
    else if elem norm reservedExact then { why = "is reserved: the sandbox needs that directory itself"; }
    else if b.any (under norm) reservedTree
    then { why = "is reserved: /proc, /sys, /dev, /run/seed, /etc/seed, /seed/bin and /seed/tpm belong to the sandbox"; }
    else if b.any (under norm) generated
    then { why = "is a file the node writes into every instance (/etc/hosts, /etc/hostname, /etc/resolv.conf, /etc/passwd, /etc/group, /etc/nsswitch.conf): expected a directory of the instance's own"; }
    else { value = norm; };

  port = path: v:
    if !isInt v then bad (typeErr path v "a port number (an integer from 1 to 65535)")
    else if v < 1 || v > 65535 then bad (err path "port ${toString v} is out of range: expected an integer from 1 to 65535")
    else good v;

  maxEntries = 1000;
  checkMap = path: v: expected:
    if !isAttrs v then typeErr path v expected
    else if length (attrNames v) > maxEntries
    then err path "has ${toString (length (attrNames v))} entries: at most ${toString maxEntries} are allowed"
    else [ ];

  # A map option: each entry checked by f name path value; the good ones kept.
  mapOf = path: v: expected: f:
    let pre = checkMap path v expected; in
    if pre != [ ] then bad pre
    else
      let rs = mapAttrs (n: e: f n (key path n) e) v; in
      {
        ok = b.all (n: rs.${n}.ok) (attrNames rs);
        value = mapAttrs (n: r: r.value) (b.intersectAttrs (listToAttrs (map (n: { name = n; value = null; })
          (filter (n: rs.${n}.ok) (attrNames rs)))) rs);
        errors = concatMap (n: rs.${n}.errors) (attrNames rs);
      };

  # ---- quantities (sizes) and durations, exactly as seed parses them ----
  digitsOf = s: map (c: b.fromJSON c) (chars s);
  pow = base: n: foldl' (acc: _: acc * base) 1 (genList (x: x) n);
  maxInt = 9223372036854775807;

  sizeSyntax = s: "malformed size ${toJSON s}: expected a number with an optional suffix Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024), k, M, G, T, P, E (powers of 1000) or an exponent like 1e9";

  # { bytes } or { why }
  quantity = s:
    let
      m = match "([+-]?)([0-9]*)(\\.([0-9]*))?(.*)" s;
      sign = b.elemAt m 0;
      whole = b.elemAt m 1;
      frac = if b.elemAt m 3 == null then "" else b.elemAt m 3;
      suffix = b.elemAt m 4;
      stripped = let z = match "0*([0-9]*)" (whole + frac); in b.elemAt z 0;
      nonzero = match "0*" (whole + frac) == null;
      binary = { Ki = 10; Mi = 20; Gi = 30; Ti = 40; Pi = 50; Ei = 60; };
      decimal = { k = 3; M = 6; G = 9; T = 12; P = 15; E = 18; };
      em = match "[eE]([+-]?)([0-9]+)" suffix;
      scale =
        if suffix == "" then { shift = 0; exp = 0; }
        else if binary ? ${suffix} then { shift = binary.${suffix}; exp = 0; }
        else if decimal ? ${suffix} then { shift = 0; exp = decimal.${suffix}; }
        else if suffix == "m" then { why = "size ${toJSON s} is in thousandths of a byte (suffix m): use M for megabytes or Mi for mebibytes"; }
        else if em != null then
          (if stringLength (b.elemAt em 1) > 2 || b.fromJSON (b.elemAt em 1) > 36
           then { why = "size ${toJSON s} has an exponent out of range"; }
           else { shift = 0; exp = (if b.elemAt em 0 == "-" then -1 else 1) * b.fromJSON (b.elemAt em 1); })
        else { why = sizeSyntax s; };
      # value = mantissa * 2^shift * 10^(exp - fracDigits), rounded up
      mant = stripped;
      e10 = scale.exp - stringLength frac;
      tooBig = { why = "size ${toJSON s} is too large (at most 8Ei)"; };
      # an integer from decimal digits, or null when it would pass 2^63 - 1
      toIntChecked = ds: foldl' (acc: d: if acc == null || acc > (maxInt - d) / 10 then null else acc * 10 + d) 0 ds;
      mulChecked = x: k: if x == null || (k != 0 && x > maxInt / k) then null else x * k;
      value =
        let
          n = toIntChecked (digitsOf mant);
          up = if e10 >= 0 then mulChecked n (pow 10 e10) else n;
          shifted = mulChecked up (pow 2 scale.shift);
          den = pow 10 (0 - e10);
        in
        if e10 >= 0 then shifted
        else if (0 - e10) > 18 then 1
        else if shifted == null then null
        else shifted / den + (if shifted - (shifted / den) * den > 0 then 1 else 0);
    in
    if m == null || (whole == "" && frac == "") || match ".*\\..*\\..*" s != null then { why = sizeSyntax s; }
    else if scale ? why then scale
    else if !nonzero then { why = "size ${toJSON s} is zero: a volume needs a positive size"; }
    else if sign == "-" then { why = "size ${toJSON s} is negative: a volume needs a positive size"; }
    else if stringLength mant > 36 then { why = "size ${toJSON s} has too many digits"; }
    else if value == null then tooBig
    else { bytes = value; };

  durationSyntax = s: "malformed duration ${toJSON s}: expected a number with a unit ms, s, m or h, like \"500ms\", \"5s\" or \"1m\"";
  formatDuration = ms:
    if ms != 0 && ms - (ms / 3600000) * 3600000 == 0 then "${toString (ms / 3600000)}h"
    else if ms != 0 && ms - (ms / 60000) * 60000 == 0 then "${toString (ms / 60000)}m"
    else if ms != 0 && ms - (ms / 1000) * 1000 == 0 then "${toString (ms / 1000)}s"
    else "${toString ms}ms";

  # { ms } or { why }, as seed parses durations
  durationMs = s:
    let
      m = match "([0-9]*)(\\.([0-9]*))?(.*)" s;
      whole = b.elemAt m 0;
      point = b.elemAt m 1 != null;
      frac = if b.elemAt m 2 == null then "" else b.elemAt m 2;
      rest = b.elemAt m 3;
      units = { ms = 1; s = 1000; m = 60000; h = 3600000; };
      num = t: if t == "" then 0 else b.fromJSON (let z = match "0*([0-9]+)" t; in if z == null then "0" else b.elemAt z 0);
      fden = pow 10 (stringLength frac);
      unit = units.${rest};
    in
    if stringLength whole > 12 then { why = "duration ${toJSON s} has too many digits"; }
    else if stringLength frac > 9 then { why = "duration ${toJSON s} has too many digits after the point"; }
    else if point && frac == "" then { why = durationSyntax s; }
    else if whole == "" && !point then { why = durationSyntax s; }
    else if rest == "" then { why = "duration ${toJSON s} has no unit: expected ms, s, m or h, like \"500ms\" or \"5s\" (a plain JSON number counts seconds)"; }
    else if !(units ? ${rest}) then { why = durationSyntax s; }
    else if (num frac * unit) - ((num frac * unit) / fden) * fden != 0 then { why = "duration ${toJSON s} is finer than a millisecond"; }
    else { ms = num whole * unit + num frac * unit / fden; };

  duration = path: what: lo: hi: v:
    let
      r =
        if isString v then
          (let d = durationMs v; in if d ? why then { why = d.why; } else { ms = d.ms; text = toJSON v; })
        else if (isInt v || isFloat v) && v >= 0 then
          { ms = if v > 1000000000 then maxInt else b.floor (v * 1000 + 0.5); text = "${describe v} seconds"; }
        else { type = true; };
    in
    if r ? type then bad (typeErr path v "a duration like \"500ms\", \"5s\" or \"1m\", or a number of seconds")
    else if r ? why then bad (err path r.why)
    else if r.ms < lo || r.ms > hi
    then bad (err path "${what} ${r.text} is out of range: expected from ${formatDuration lo} to ${formatDuration hi}")
    else good r.ms;

  command = path: v:
    if !isList v || v == [ ] then bad (typeErr path v "a non-empty array of strings, like [\"busybox\", \"httpd\", \"-f\"]")
    else if length v > 4096 then bad (err path "has ${toString (length v)} arguments: at most 4096 are allowed")
    else
      let
        es = concatMap (i:
          let a = b.elemAt v i; p = "${path}[${toString i}]"; in
          if !isString a then typeErr p a "a string"
          else if i == 0 && a == "" then err p "the program name must not be empty"
          else [ ]) (genList (i: i) (length v));
      in if es == [ ] then good v else bad es;

  envMap = path: v:
    mapOf path v "an object mapping variable names to strings" (n: p: e:
      let
        why = envName n;
        es = (if why != null then err p "variable name ${why}" else [ ])
          ++ (if !isString e then typeErr p e "a string"
              else if stringLength e > 131071 then err p "value is ${toString (stringLength e)} bytes long: at most 131071 are allowed"
              else [ ]);
      in if es == [ ] then good e else bad es);

  # ---- the instance ----
  systems = [ "x86_64-linux" "aarch64-linux" "i686-linux" "riscv64-linux" "armv7l-linux" ];
  sizes = [ "xs" "s" "m" "l" "xl" ];
  tiers = { xs = { vcpus = 1; memory = 512; }; s = { vcpus = 1; memory = 1024; }; m = { vcpus = 2; memory = 2048; };
            l = { vcpus = 4; memory = 4096; }; xl = { vcpus = 8; memory = 8192; }; };
  protocols = [ "tcp" "udp" "dns" "http" "grpc" ];
  options = [ "name" "system" "size" "expose" "storage" "connect" "rollout" "rolloutTimeout" "health"
              "shoot" "root" "env" "processes" "toplevel" "users" "nix" "secrets" "boot" ];

  checkExpose = path: v:
    mapOf path v "an object mapping names to ports, like {\"http\": 8080}" (n: p: e:
      let
        why = dnsLabel n 63;
        nameErr = if why != null then err p "port name ${why}" else [ ];
        r =
          if isInt e then (let x = port "${p}.port" e; in x // { value = { port = x.value; protocol = "http"; }; })
          else if isAttrs e then
            let
              ks = checkKeys p e [ "port" "protocol" ];
              pr = if e ? port then port "${p}.port" e.port
                   else bad (err "${p}.port" "missing: expected a port number (an integer from 1 to 65535)");
              proto = if e ? protocol then enum "${p}.protocol" "protocol" protocols e.protocol else good "http";
            in { ok = ks == [ ] && pr.ok && proto.ok; errors = ks ++ pr.errors ++ proto.errors;
                 value = { port = pr.value; protocol = proto.value; }; }
          else bad (typeErr p e "a port number or an object {\"port\": ..., \"protocol\": ...}");
      in r // { ok = r.ok && nameErr == [ ]; errors = nameErr ++ r.errors; });

  sizeValue = path: v:
    let s = if isInt v then toString v else v; in
    if !(isString v || isInt v) then bad (typeErr path v "a size like \"1Gi\", \"500Mi\" or \"10G\"")
    else
      let q = quantity s; in
      if q ? why then bad (err path q.why)
      else if q.bytes < 1048576 then bad (err path "size ${toJSON s} is ${toString q.bytes} bytes: a volume needs at least 1Mi (1048576 bytes)")
      else if q.bytes > 17592186044416 then bad (err path "size ${toJSON s} is ${toString q.bytes} bytes: a volume can be at most 16Ti (17592186044416 bytes)")
      else good { size = s; sizeBytes = q.bytes; };

  checkStorage = path: v:
    let
      r = mapOf path v "an object mapping volume names to sizes, like {\"data\": \"1Gi\"}" (n: p: e:
        let
          why = dnsLabel n 63;
          nameErr = if why != null then err p "volume name ${why}" else [ ];
          sz =
            if isAttrs e then
              (if e ? size then sizeValue "${p}.size" e.size else bad (err "${p}.size" "missing: expected a size like \"1Gi\""))
            else if isString e || isInt e then sizeValue "${p}.size" e
            else bad (typeErr p e "a size like \"1Gi\" or an object {\"size\": ..., \"mountPoint\": ...}");
          ks = if isAttrs e then checkKeys p e [ "size" "mountPoint" ] else [ ];
          mp =
            if isAttrs e && e ? mountPoint then
              (if !isString e.mountPoint then bad (typeErr "${p}.mountPoint" e.mountPoint "an absolute path")
               else let x = mountPoint e.mountPoint; in
                 if x ? why then bad (err "${p}.mountPoint" "mount point ${describe e.mountPoint} ${x.why}") else good x.value)
            else good "/seed/storage/${n}";
        in {
          ok = nameErr == [ ] && ks == [ ] && sz.ok && mp.ok;
          errors = nameErr ++ ks ++ sz.errors ++ mp.errors;
          value = (if sz.ok then sz.value else { }) // { mountPoint = mp.value; };
        });
      names = attrNames r.value;
      clashes = concatMap (i:
        let n = b.elemAt names i; earlier = filter (m: r.value.${m}.mountPoint == r.value.${n}.mountPoint) (b.genList (j: b.elemAt names j) i); in
        if earlier == [ ] then [ ]
        else err "${key path n}.mountPoint" "mount point ${toJSON r.value.${n}.mountPoint} is already used by volume ${toJSON (head earlier)}: each volume needs its own mount point")
        (genList (i: i) (length names));
    in if r.ok or false then r // { ok = clashes == [ ]; errors = r.errors ++ clashes; } else r // { errors = r.errors ++ (if r ? value && r.value != null then clashes else [ ]); };

  connectEnv = n: "SEED_" + b.replaceStrings [ "-" "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ]
    [ "_" "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ] n + "_HOST";

  checkConnect = path: v:
    let
      r = mapOf path v "an object mapping names to services, like {\"db\": \"seed-db\"}" (n: p: e:
        let
          why = connectName n;
          nameErr = if why != null then err p "connect name ${why}" else [ ];
          ks = if isAttrs e then checkKeys p e [ "service" "port" ] else [ ];
          pr = if isAttrs e && e ? port && e.port != null then port "${p}.port" e.port else good null;
          svc =
            if isAttrs e then (if e ? service then { v = e.service; } else { missing = true; })
            else if isString e then { v = e; }
            else { type = true; };
          sv =
            if svc ? type then bad (typeErr p e "a service name or an object {\"service\": ..., \"port\": ...}")
            else if svc ? missing then bad (err "${p}.service" "missing: expected a service name like \"seed-db\"")
            else if !isString svc.v then bad (typeErr "${p}.service" svc.v "a service name like \"seed-db\"")
            else let h = hostname svc.v; in
              if h != null then bad (err "${p}.service" "service name ${toJSON svc.v} ${h}") else good svc.v;
        in {
          ok = nameErr == [ ] && ks == [ ] && pr.ok && sv.ok;
          errors = nameErr ++ ks ++ pr.errors ++ sv.errors;
          value = { service = sv.value; port = pr.value; };
        });
      names = attrNames (if r.value == null then { } else r.value);
      clashes = concatMap (i:
        let n = b.elemAt names i; earlier = filter (m: connectEnv m == connectEnv n) (genList (j: b.elemAt names j) i); in
        if earlier == [ ] then [ ] else err (key path n) "gives \$${connectEnv n}, which connect ${toJSON (head earlier)} already sets")
        (genList (i: i) (length names));
    in r // { errors = r.errors ++ clashes; ok = r.ok && clashes == [ ]; };

  checkProcesses = path: v:
    let
      r = mapOf path v "an object mapping process names to {\"command\": [...]}" (n: p: e:
        let
          why = processName n;
          nameErr = if why != null then err p "process name ${why}" else [ ];
        in
        if !isAttrs e then bad (nameErr ++ typeErr p e "an object {\"command\": [...], \"env\"?, \"cwd\"?, \"user\"?, \"restart\"?, \"foreground\"?}")
        else
          let
            ks = checkKeys p e [ "command" "env" "cwd" "user" "restart" "foreground" ];
            cmd = if e ? command then command "${p}.command" e.command
                  else bad (err "${p}.command" "missing: every process needs a command, like [\"busybox\", \"httpd\"]");
            env = if e ? env then envMap "${p}.env" e.env else good { };
            cwd =
              if !(e ? cwd) then good "/"
              else if !isString e.cwd then bad (typeErr "${p}.cwd" e.cwd "an absolute path")
              else let w = absPath e.cwd; in if w != null then bad (err "${p}.cwd" "working directory ${toJSON e.cwd} ${w}") else good e.cwd;
            usr =
              if !(e ? user) then good "root"
              else if !isString e.user then bad (typeErr "${p}.user" e.user "a user name or uid")
              else let w = user e.user; in if w != null then bad (err "${p}.user" "user ${toJSON e.user} ${w}") else good e.user;
            fg =
              if !(e ? foreground) then good false
              else if isBool e.foreground then good e.foreground
              else bad (typeErr "${p}.foreground" e.foreground "true or false");
            restart =
              if !(e ? restart) then good (if fg.value == true then "no" else "always")
              else
                let x = enum "${p}.restart" "restart policy" [ "always" "on-failure" "no" ] e.restart; in
                if x.ok && fg.value == true && x.value != "no"
                then bad (err "${p}.restart" "a foreground process is not restarted: its exit ends the instance with its exit code (leave restart out or set it to \"no\")")
                else x;
            parts = [ cmd env cwd usr fg restart ];
          in {
            ok = nameErr == [ ] && b.all (x: x.ok) parts;
            errors = nameErr ++ ks ++ concatMap (x: x.errors) parts;
            value = { command = cmd.value; env = env.value; cwd = cwd.value; user = usr.value; restart = restart.value;
                      foreground = fg.value == true; };
          });
      # One foreground process at most: each after the first is reported at itself.
      fgs = filter (n: isAttrs v.${n} && (v.${n}.foreground or false) == true) (if isAttrs v then attrNames v else [ ]);
      second = concatMap (n: err "${key path n}.foreground"
        "process ${toJSON (head fgs)} is the foreground process already: only one may be") (if fgs == [ ] then [ ] else b.tail fgs);
    in r // { ok = r.ok && second == [ ]; errors = r.errors ++ second; };

  userName = s:
    if match "[0-9]+" s != null || stringLength s > 32 || match "[a-z_][a-z0-9_-]*" s == null
    then "must be 1 to 32 lower-case letters, digits, '_' or '-', starting with a letter or '_' (like \"app\")"
    else null;

  accountPath = p: what: x:
    if !isString x then bad (typeErr p x "an absolute path")
    else
      let w = absPath x; why = if w == null && match ".*:.*" x != null then "must not contain ':' (it separates the fields of /etc/passwd)" else w; in
      if why != null then bad (err p "${what} ${toJSON x} ${why}") else good x;

  idValue = p: what: min: x:
    if !isInt x || x < min || x > 4294967294
    then bad (typeErr p x "a ${what} (an integer from ${toString min} to 4294967294)")
    else good x;

  checkUsers = path: v:
    let
      r = mapOf path v "an object mapping user names to {\"uid\": N, \"gid\"?, \"shell\"?, \"home\"?}" (n: p: e:
        let
          why = userName n;
          nameErr = if why != null then err p "user name ${why}"
            else if n == "root" then err p "root always exists: declare the other accounts here" else [ ];
        in
        if !isAttrs e then bad (nameErr ++ typeErr p e "an object {\"uid\": N, \"gid\"?, \"shell\"?, \"home\"?}")
        else
          let
            ks = checkKeys p e [ "uid" "gid" "shell" "home" ];
            uid = if e ? uid then idValue "${p}.uid" "uid" 1 e.uid
                  else bad (err "${p}.uid" "missing: every user needs a uid, like {\"uid\": 1000}");
            gid = if e ? gid then idValue "${p}.gid" "gid" 0 e.gid else good uid.value;
            shell = if e ? shell then accountPath "${p}.shell" "shell" e.shell else good "/bin/sh";
            home = if e ? home then accountPath "${p}.home" "home" e.home else good "/home/${n}";
            parts = [ uid gid shell home ];
          in {
            ok = nameErr == [ ] && b.all (x: x.ok) parts;
            errors = nameErr ++ ks ++ concatMap (x: x.errors) parts;
            value = { uid = uid.value; gid = gid.value; shell = shell.value; home = home.value; };
          });
      names = attrNames (if r.value == null then { } else r.value);
      clashes = concatMap (i:
        let n = b.elemAt names i; earlier = filter (m: r.value.${m}.uid == r.value.${n}.uid) (genList (j: b.elemAt names j) i); in
        if earlier == [ ] then [ ]
        else err "${key path n}.uid" "uid ${toString r.value.${n}.uid} is user ${toJSON (head earlier)}'s already: each user needs its own uid")
        (genList (i: i) (length names));
    in r // { ok = r.ok && clashes == [ ]; errors = r.errors ++ clashes; };

  # nix = { enable, volume?, daemon?, minFree?, maxFree? }: a Nix of the instance's own.
  nixSize = p: x:
    let t = if isInt x then toString x else x; in
    if !(isString x || isInt x) then bad (typeErr p x "a size like \"1Gi\" or \"500Mi\"")
    else let q = quantity t; in if q ? why then bad (err p q.why) else good { text = t; bytes = q.bytes; };

  checkNix = path: v: storage: toplevel: procs:
    if !isAttrs v then bad (typeErr path v "an object like {\"enable\": true}")
    else
      let
        ks = checkKeys path v [ "enable" "volume" "daemon" "minFree" "maxFree" ];
        flag = k: if !(v ? ${k}) then good false else if isBool v.${k} then good v.${k} else bad (typeErr "${path}.${k}" v.${k} "true or false");
        en = flag "enable";
        dm = flag "daemon";
        vol = if !(v ? volume) then good null else if isString v.volume then good v.volume
              else bad (typeErr "${path}.volume" v.volume "the name of one of this instance's volumes");
        minF = if v ? minFree then nixSize "${path}.minFree" v.minFree else good null;
        maxF = if v ? maxFree then nixSize "${path}.maxFree" v.maxFree else good null;
        order = if minF.ok && maxF.ok && minF.value != null && maxF.value != null && maxF.value.bytes < minF.value.bytes
          then err "${path}.maxFree" "maxFree ${maxF.value.text} is below minFree ${minF.value.text}: garbage collection stops at maxFree free" else [ ];
        names = attrNames storage;
        volErr =
          if en.value != true then [ ]
          else if toplevel then err "${path}.enable" "a NixOS instance (toplevel) brings its own Nix"
          else if vol.value != null then (if elem vol.value names then [ ] else
            err "${path}.volume" "unknown volume ${toJSON vol.value}: expected one of this instance's storage volumes")
          else if names == [ ] then err "${path}.enable" "keeps the Nix store on a volume, and this instance has none: declare one in storage"
          else [ ];
        daemonErr = if en.value == true && dm.value == true && procs ? "nix-daemon"
          then err (key "seed.processes" "nix-daemon") "nix.daemon runs a process of this name: leave it to nix.daemon or rename it" else [ ];
        parts = [ en dm vol minF maxF ];
        errors = ks ++ concatMap (x: x.errors) parts ++ order ++ volErr ++ daemonErr;
      in {
        ok = errors == [ ];
        inherit errors;
        value = {
          enable = en.value == true;
          volume = if en.value == true then (if vol.value != null then vol.value else if names == [ ] then null else head names) else null;
          daemon = dm.value == true;
          minFree = if minF.value == null then null else minF.value.text;
          maxFree = if maxF.value == null then null else maxF.value.text;
        };
      };

  # secrets.<name> = a path of an age or sops file (or { file, key?, mode?, owner?, env? }).
  secretName = s:
    if stringLength s < 1 || stringLength s > 64 then "must be 1 to 64 characters long"
    else if match "[A-Za-z0-9].*" s == null then "must start with a letter or digit"
    else if match "[A-Za-z0-9._-]*" s == null then "may only contain letters, digits, '.', '_' and '-'"
    else null;
  # A path of the flake, as seed sees it: relative to the flake's root.
  relativeFile = f:
    let m = match "/nix/store/[0-9a-z]{32}-source/(.*)" (toString f); in if m == null then toString f else head m;
  suffix = f: let m = match ".*(\\.[^./]*)" f; in if m == null then "" else head m;
  secretFormat = f:
    let
      sfx = suffix (toString f);
      kind = if elem sfx [ ".yaml" ".yml" ] then "yaml" else if sfx == ".json" then "json" else if sfx == ".env" then "dotenv" else "binary";
      names = { yaml = "YAML"; json = "JSON"; dotenv = "dotenv"; binary = "binary"; };
      # a binary age file cannot be read into a Nix string: its name says what it is
      text = if sfx == ".age" then null else b.readFile f;
      needle = { dotenv = "sops_mac="; yaml = "sops:"; json = "\"sops\""; binary = "\"sops\""; }.${kind};
      has = t: n: b.length (b.split (b.replaceStrings [ "." "[" "]" "(" ")" "*" "+" "?" "{" "}" "|" "^" "$" "\\" ]
        [ "\\." "\\[" "\\]" "\\(" "\\)" "\\*" "\\+" "\\?" "\\{" "\\}" "\\|" "\\^" "\\$" "\\\\" ] n) t) > 1;
    in
    if text == null then { format = "age"; }
    else if substring 0 19 text == "age-encryption.org/" || substring 0 34 text == "-----BEGIN AGE ENCRYPTED FILE-----" then { format = "age"; }
    else if has text needle then { format = "sops-${kind}"; }
    else { why = "neither an age file (age-encryption.org/v1, binary or armored) nor a sops file (${names.${kind}}, by its extension) with sops metadata"; };

  checkSecrets = path: v:
    mapOf path v "an object mapping secret names to files, like {\"db\": \"secrets/db.age\"}" (n: p: e:
      let
        why = secretName n;
        nameErr = if why != null then err p "secret name ${why}" else [ ];
        long = isAttrs e && !(isPath e);
        fileV = if isPath e || isString e then e else if long then e.file or null else null;
        typeE = if !(isPath e || isString e || long) then typeErr p e "the path of an age or sops file, or {\"file\", \"key\", \"mode\", \"owner\", \"env\"}" else [ ];
        ks = if long then checkKeys p e [ "file" "key" "mode" "owner" "env" ] else [ ];
        noFile = if long && !(e ? file) then err p "has no \"file\": expected {\"file\": \"secrets/db.age\", ...}" else [ ];
        keyV = if long && e ? key then e.key else null;
        keyE = if keyV == null then [ ] else if !isString keyV then typeErr "${p}.key" keyV "a key of the sops document, like \"db.password\""
          else if keyV == "" then err "${p}.key" "is empty: expected a key of the sops document, like \"db.password\"" else [ ];
        modeV = if long && e ? mode then e.mode else "0400";
        modeE = if isString modeV && match "[0-7]{1,4}" modeV != null && (stringLength modeV < 4 || substring 0 1 modeV == "0")
          then [ ] else typeErr "${p}.mode" modeV "a file mode as an octal string from \"0000\" to \"0777\", like \"0440\"";
        ownerV = if long && e ? owner then e.owner else null;
        ownerE = if ownerV == null then [ ] else if !isString ownerV then typeErr "${p}.owner" ownerV "a user of the instance (\"name\", \"uid\", \"name:group\")"
          else let w = user ownerV; in if w != null then err "${p}.owner" "owner ${w}" else [ ];
        envV = if long && e ? env then e.env else null;
        envE = if envV == null then [ ] else if !isString envV then typeErr "${p}.env" envV "an environment variable name"
          else let w = envName envV; in if w != null then err "${p}.env" "variable name ${w}" else [ ];
        early = nameErr ++ typeE ++ ks ++ noFile ++ keyE ++ modeE ++ ownerE ++ envE;
        fileE =
          if early != [ ] || fileV == null then [ ]
          else if !(isPath fileV || substring 0 11 fileV == "/nix/store/")
          then typeErr "${p}.file" fileV "a path of the flake (./secrets/db.age), which Nix can read"
          else if !b.pathExists fileV then err "${p}.file" "file ${toJSON (relativeFile fileV)} cannot be read: No such file or directory"
          else
            let f = secretFormat fileV; in
            if f ? why then err "${p}.file" "file ${toJSON (relativeFile fileV)} is ${f.why}"
            else if keyV != null && elem f.format [ "age" "sops-binary" ]
            then err "${p}.file" "key ${toJSON keyV}: only a sops YAML, JSON or dotenv document has keys; file ${toJSON (relativeFile fileV)} is ${if f.format == "age" then "an age file" else "a sops binary file"}"
            else [ ];
        errors = early ++ fileE;
        padded = m: substring 0 (4 - stringLength m) "0000" + m;
      in
      if errors != [ ] then bad errors
      else good {
        file = relativeFile fileV;
        format = (secretFormat fileV).format;
        key = keyV;
        mode = padded modeV;
        owner = if ownerV == null then "root" else ownerV;
        env = envV;
        digest = b.hashFile "sha256" fileV;
      });

  # boot = { required = [ "ssh" ... ]; }: image mode's boot tasks that must succeed.
  bootTasks = [ "users" "password" "ssh" "tailscale" "gpu" "persist" "nix" ];
  checkBoot = path: v:
    if !isAttrs v then bad (typeErr path v "an object like {\"required\": [\"ssh\"]}")
    else
      let
        ks = checkKeys path v [ "required" ];
        req = v.required or [ ];
        p = "${path}.required";
        each = if !isList req then [ ] else genList (i:
          let x = b.elemAt req i; e = enum "${p}[${toString i}]" "boot task" bootTasks x;
              dup = e.ok && elem x (b.genList (j: b.elemAt req j) i);
          in if dup then bad (err "${p}[${toString i}]" "${toJSON x} is listed twice") else e) (length req);
        errors = ks ++ (if !isList req then typeErr p req "a list of boot tasks, like [\"ssh\", \"gpu\"]" else [ ])
          ++ concatMap (x: x.errors) each;
      in { ok = errors == [ ]; inherit errors; value = { required = map (x: x.value) (filter (x: x.ok) each); }; };

  # With users, a process's user is one of them, root, a uid or an account of the root.
  checkProcessUsers = P: users: procs: rootPasswd:
    if users == { } then [ ]
    else concatMap (n:
      let
        u = procs.${n}.user;
        name = head (b.split ":" u);
        known = name == "root" || match "[0-9]+" name != null || users ? ${name}
          || (rootPasswd != null && match "(.*\n)?${name}:.*" rootPasswd != null);
      in
      if known then [ ]
      else err "${key "${P}.processes" n}.user" "unknown user ${toJSON name}: expected one of this instance's users (${concatStringsSep ", " (attrNames users)}), root, a uid, or an account of the root directory's /etc/passwd")
      (attrNames procs);

  checkHealth = path: v: exposed: exposeOk:
    if !isAttrs v then bad (typeErr path v "an object like {\"http\": \"/healthz\", \"port\": 8080} or {\"command\": [...]}")
    else
      let
        ks = checkKeys path v [ "http" "port" "command" "interval" "timeout" "retries" ];
        tcpPorts = filter (n: exposed.${n}.protocol != "udp") (attrNames exposed);
        httpPath = s:
          if !isString s then bad (typeErr "${path}.http" s "a request path like \"/healthz\"")
          else
            let why =
              if substring 0 1 s != "/" then "must start with '/'"
              else if stringLength s > 1024 then "is longer than 1024 bytes"
              else if match "[!-~]*" s == null then "may only hold printable ASCII characters without spaces"
              else null;
            in if why != null then bad (err "${path}.http" "request path ${describe s} ${why}: expected a path like \"/healthz\"") else good s;
        hport = p:
          let x = port "${path}.port" p; in
          if !x.ok || !exposeOk then x
          else if b.any (n: exposed.${n}.port == p) tcpPorts then x
          else if tcpPorts == [ ] then bad (err "${path}.port" "port ${toString p} is not exposed: this instance exposes no TCP port (declare it in expose)")
          else bad (err "${path}.port" "port ${toString p} is not one of this instance's exposed TCP ports: expected one of ${
            concatStringsSep ", " (map (n: "${toString exposed.${n}.port} (${n})") tcpPorts)}");
        kind =
          if v ? http && v ? command then bad (err path "has both http and command: expected exactly one kind of check")
          else if v ? http then
            let hp = httpPath v.http;
                pp = if v ? port then hport v.port else bad (err "${path}.port" "missing: an http check needs the exposed port to send it to");
            in { ok = hp.ok && pp.ok; errors = hp.errors ++ pp.errors; value = { http = hp.value; port = pp.value; }; }
          else if v ? command then
            let c = command "${path}.command" v.command;
                pe = if v ? port then err "${path}.port" "belongs to an http check: a command check runs inside the instance" else [ ];
            in { ok = c.ok && pe == [ ]; errors = c.errors ++ pe; value = { command = c.value; }; }
          else bad (err path "has no check: expected {\"http\": \"/path\", \"port\": N} or {\"command\": [...]}");
        interval = if v ? interval then duration "${path}.interval" "health.interval" 100 3600000 v.interval else good 5000;
        timeout = if v ? timeout then duration "${path}.timeout" "health.timeout" 100 300000 v.timeout else good 2000;
        retries =
          if !(v ? retries) then good 3
          else if !isInt v.retries then bad (typeErr "${path}.retries" v.retries "a number of consecutive failures (an integer from 1 to 100)")
          else if v.retries < 1 || v.retries > 100 then bad (err "${path}.retries" "health.retries ${toString v.retries} is out of range: expected an integer from 1 to 100")
          else good v.retries;
        parts = [ kind interval timeout retries ];
      in {
        ok = ks == [ ] && b.all (x: x.ok) parts;
        errors = ks ++ concatMap (x: x.errors) parts;
        value = kind.value // { intervalMs = interval.value; timeoutMs = timeout.value; retries = retries.value; };
      };

  checkShoot = path: v:
    if !isAttrs v then bad (typeErr path v "an object like {\"enable\": true, \"max\": 4}")
    else
      let
        ks = checkKeys path v [ "enable" "max" ];
        en = if !(v ? enable) then good false else if isBool v.enable then good v.enable else bad (typeErr "${path}.enable" v.enable "true or false");
        mx =
          if !(v ? max) then good 4
          else if !isInt v.max then bad (typeErr "${path}.max" v.max "how many shoots may run at once (an integer from 1 to 256)")
          else if v.max < 1 || v.max > 256 then bad (err "${path}.max" "shoot.max ${toString v.max} is out of range: expected an integer from 1 to 256")
          else good v.max;
      in { ok = ks == [ ] && en.ok && mx.ok; errors = ks ++ en.errors ++ mx.errors; value = { enable = if en.ok then en.value else false; max = if mx.ok then mx.value else 4; }; };

  storePath = s: isString s && match "/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+" s != null;

  # The instance: merged seed.* definitions -> { errors, meta }.
  check = name: system: s:
    let
      P = "seed";
      opt = k: d: if s ? ${k} then s.${k} else d;
      keys = checkKeys P s options;
      nameR =
        if !(s ? name) || s.name == name then good name
        else bad (typeErr "${P}.name" s.name "the instance's own name ${toJSON name} (or no name)");
      nameErr = let w = dnsLabel name 58; in if w != null then err P "instance name ${w}" else [ ];
      sys = if s ? system then enum "${P}.system" "system" systems s.system else good system;
      size = if s ? size then enum "${P}.size" "size tier" sizes s.size else good "s";
      expose = if s ? expose then checkExpose "${P}.expose" s.expose else good { };
      storage = if s ? storage then checkStorage "${P}.storage" s.storage else good { };
      connect = if s ? connect then checkConnect "${P}.connect" s.connect else good { };
      rollout = if s ? rollout then enum "${P}.rollout" "rollout" [ "recreate" "rolling" ] s.rollout else good "recreate";
      rolloutTimeout = if s ? rolloutTimeout then duration "${P}.rolloutTimeout" "rolloutTimeout" 1000 3600000 s.rolloutTimeout else good 60000;
      health = if s ? health && s.health != null then checkHealth "${P}.health" s.health (if expose.value == null then { } else expose.value) expose.ok else good null;
      shoot = if s ? shoot then checkShoot "${P}.shoot" s.shoot else good { enable = false; max = 4; };
      toplevel =
        if !(s ? toplevel) then good null
        else if !isString s.toplevel then bad (typeErr "${P}.toplevel" s.toplevel "a Nix store path of a NixOS system")
        else if !storePath s.toplevel then bad (err "${P}.toplevel" "toplevel ${toJSON s.toplevel} is not a Nix store path: expected /nix/store/<hash>-<name>")
        else good s.toplevel;
      root =
        if !(s ? root) then good (if s ? toplevel then null else "host")
        else if s ? toplevel then bad (err "${P}.root" "root and toplevel exclude each other: a NixOS instance (toplevel) brings its own root")
        else if isPath s.root then good (toString s.root)
        else if isAttrs s.root && isDerivationLike s.root then good s.root.outPath
        else if !isString s.root then bad (typeErr "${P}.root" s.root "\"host\" or a path to a root directory relative to this file")
        else if substring 0 11 s.root == "/nix/store/" && !storePath s.root
        then bad (err "${P}.root" "root ${toJSON s.root} is not a Nix store path: expected /nix/store/<hash>-<name>")
        else good s.root;
      env = if s ? env then envMap "${P}.env" s.env else good { };
      processes =
        if !(s ? processes) then good { }
        else if s ? toplevel then bad (err "${P}.processes" "processes and toplevel exclude each other: a NixOS instance runs its toplevel's init")
        else checkProcesses "${P}.processes" s.processes;
      users = if s ? users then checkUsers "${P}.users" s.users else good { };
      rootPasswd =
        let f = if isPath s.root or null then s.root + "/etc/passwd" else null; in
        if f != null && b.pathExists f then b.readFile f else null;
      procUsers = if processes.ok && users.ok then checkProcessUsers P users.value processes.value rootPasswd else [ ];
      nixR = if s ? nix then checkNix "${P}.nix" s.nix (if storage.value == null then { } else storage.value) (s ? toplevel)
          (if processes.value == null then { } else processes.value)
        else good { enable = false; volume = null; daemon = false; minFree = null; maxFree = null; };
      secrets = if s ? secrets then checkSecrets "${P}.secrets" s.secrets else good { };
      boot = if s ? boot then checkBoot "${P}.boot" s.boot else good { required = [ ]; };
      secretEnvs = let xs = filter (n: secrets.value.${n}.env != null) (attrNames secrets.value); in
        concatMap (i: let a = b.elemAt xs i; in concatMap (bn:
          if secrets.value.${bn}.env == secrets.value.${a}.env
          then err "${P}.secrets" "secrets ${a} and ${bn} both set the variable ${secrets.value.${a}.env}" else [ ])
          (b.genList (j: b.elemAt xs (i + 1 + j)) (length xs - i - 1))) (genList (i: i) (length xs));
      all = [ nameR sys size expose storage connect rollout rolloutTimeout health shoot toplevel root env processes users nixR secrets boot ];
      errors = nameErr ++ keys ++ concatMap (x: x.errors) all ++ procUsers ++ (if secrets.ok then secretEnvs else [ ]);
      tier = tiers.${if size.ok then size.value else "s"};
      body = {
        inherit name;
        system = sys.value;
        size = size.value;
        resources = tier;
        expose = expose.value;
        storage = storage.value;
        connect = connect.value;
        rollout = rollout.value;
        rolloutTimeoutMs = rolloutTimeout.value;
        health = health.value;
        shoot = shoot.value;
        root = root.value;
        env = env.value;
        processes = processes.value;
        toplevel = toplevel.value;
        users = users.value;
        nix = nixR.value;
        boot = boot.value;
      } // (if secrets.value != null && secrets.value != { } then { secrets = secrets.value; } else { });
      # The identity: seed's canonical JSON of the meta (sorted keys, compact) with the
      # identity version; options added after version 1 only when not at their default.
      idBody = removeAttrs body ((if body.rolloutTimeoutMs == 60000 then [ "rolloutTimeoutMs" ] else [ ])
        ++ (if body.health == null then [ "health" ] else [ ])
        ++ (if body.users == { } then [ "users" ] else [ ])
        ++ (if !body.nix.enable then [ "nix" ] else [ ])
        ++ (if body.boot.required == [ ] then [ "boot" ] else [ ]))
        // { identityVersion = 1; }
        // { processes = mapAttrs (_: p: if p.foreground then p else removeAttrs p [ "foreground" ]) body.processes; };
      # A root directory's content is part of the identity: seed hashes the tree itself.
      # A store path names its content already.
      identity = if b.elem body.root [ "host" null ] || (isString body.root && storePath body.root)
        then b.hashString "sha256" (toJSON idBody) else null;
    in { inherit errors; meta = body // { inherit identity; }; };

  # seed's formula for a namespace from a flake URI (Seed's own, in Nix).
  namespaceOf = uri:
    let
      alphabet = "abcdefghijklmnopqrstuvwxyz234567";
      hex = substring 0 20 (b.hashString "sha256" uri);
      bytes = map charCode (chars hex);
      charCode = c: { "0" = 48; "1" = 49; "2" = 50; "3" = 51; "4" = 52; "5" = 53; "6" = 54; "7" = 55; "8" = 56; "9" = 57;
                      a = 97; b = 98; c = 99; d = 100; e = 101; f = 102; }.${c};
      bits = concatMap (x: genList (i: (x / (pow 2 (7 - i))) - (x / (pow 2 (8 - i))) * 2) 8) bytes;
      groups = genList (i: foldl' (acc: k: acc * 2 + b.elemAt bits (i * 5 + k)) 0 (genList (k: k) 5)) 12;
    in "s-" + concatStringsSep "" (map (g: substring g 1 alphabet) groups);

  mkSeed = { name, module ? { }, modules ? [ ], pkgs ? null, system ? "x86_64-linux", uri ? null, specialArgs ? { } }:
    let
      lib = seedLib;
      args = specialArgs // {
        inherit config lib name;
        pkgs = if pkgs != null then pkgs
          else throw "seed.lib.mkSeed ${name}: a module uses pkgs, but mkSeed was given none: pass pkgs = import nixpkgs { system = ...; }";
        modulesPath = throw "seed.lib.mkSeed ${name}: modulesPath is a NixOS thing; seed reads only seed.* options";
      };
      defs = collect args "<mkSeed ${name}>" ([ module ] ++ modules);
      config = mergeAttrs false "config" (map (d: { inherit (d) file; value = d.config; }) defs);
      seedDefs = map (d: { inherit (d) file; value = d.config.seed; }) (filter (d: d.config ? seed) defs);
      merged = mergeDefs true "seed" seedDefs;
      s = if merged.absent then { } else merged.value;
      checked = check name system (if isAttrs s then s else { });
    in {
      inherit name config;
      # The spec as seeds.json holds it: the merged definitions, paths as strings.
      spec = if isAttrs s then s else throw "seed: expected an attribute set of seed options, found ${describe s}";
      meta =
        if checked.errors != [ ]
        then throw ("instance ${name} has ${toString (length checked.errors)} error${if length checked.errors == 1 then "" else "s"}:\n  "
          + concatStringsSep "\n  " checked.errors)
        else checked.meta // { namespace = if uri == null then null else namespaceOf uri; };
      errors = checked.errors;
    };

  seedLib = {
    inherit mkSeed mkOverride mkDefault mkForce mkIf mkMerge namespaceOf;
    # the few nixpkgs lib functions modules use most
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalAttrs = c: a: if c then a else { };
  };
in
seedLib
