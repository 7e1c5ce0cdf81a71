{
  # Installed with seed: /usr/share/seed/nix (or /usr/local/share/seed/nix).
  inputs.seed.url = "path:/usr/share/seed/nix";

  outputs = { seed, ... }: {
    seeds.web = seed.lib.mkSeed {
      name = "web";
      module = ./web.nix;
    };
  };
}
