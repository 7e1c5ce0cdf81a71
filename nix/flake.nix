{
  description = "seed: declarative machines from Nix modules (seed.lib.mkSeed), no nixpkgs needed";

  outputs = { self }: {
    lib = import ./lib.nix;

    templates.instance = {
      path = ./templates/instance;
      description = "One seed instance, web: size, an exposed port and a volume (Seed's quick start)";
    };
    templates.default = self.templates.instance;
  };
}
