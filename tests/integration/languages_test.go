//go:build integration

package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/pkg/api"
)

// languageCase is what every language is tested with: a hello world, a
// program that reads stdin, one that prints the version that runs, and,
// for compiled languages, one that does not compile.
type languageCase struct {
	language, file string
	hello          string // prints "hello, world"
	stdin          string // prints its stdin's first line upper-cased
	version        string // prints the language's version
	compileError   string // empty: the language does not compile
}

// The stdin programs of C and of C++, the same for each standard.
const (
	cStdin   = "#include <stdio.h>\n#include <ctype.h>\nint main(void){int c;while((c=getchar())!=EOF&&c!='\\n')putchar(toupper(c));putchar('\\n');}"
	cppStdin = "#include <iostream>\n#include <string>\n#include <cctype>\nint main(){std::string s;std::getline(std::cin,s);for(auto&c:s)c=std::toupper(c);std::cout<<s<<\"\\n\";}"
)

var languageCases = []languageCase{
	{language: "python", file: "main.py",
		hello:   `print("hello, world")`,
		stdin:   `print(input().upper())`,
		version: "import platform\nprint(platform.python_version())"},
	{language: "javascript", file: "main.js",
		hello:   `console.log("hello, world")`,
		stdin:   `console.log(require("fs").readFileSync(0, "utf8").split("\n")[0].toUpperCase())`,
		version: `console.log(process.versions.node)`},
	{language: "c", file: "main.c",
		hello:        "#include <stdio.h>\nint main(void){puts(\"hello, world\");return 0;}",
		stdin:        cStdin,
		version:      "#include <stdio.h>\nint main(void){printf(\"%d.%d.%d\\n\", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);}",
		compileError: "int main(void) { return undefined_name; }"},
	{language: "cpp", file: "main.cpp",
		hello:        "#include <iostream>\nint main(){std::cout << \"hello, world\" << std::endl;}",
		stdin:        cppStdin,
		version:      "#include <cstdio>\nint main(){std::printf(\"%d.%d.%d\\n\", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);}",
		compileError: "int main() { undefined_name(); }"},
	{language: "c23", file: "main.c",
		hello:        "#include <stdio.h>\nint main(void){constexpr int n = 1; bool ok = true; if (ok && n) puts(\"hello, world\");return 0;}",
		stdin:        cStdin,
		version:      "#include <stdio.h>\nint main(void){static_assert(__STDC_VERSION__ > 201710L); printf(\"%d.%d.%d\\n\", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);}",
		compileError: "int main(void) { return undefined_name; }"},
	{language: "cpp20", file: "main.cpp",
		hello:        "#include <iostream>\n#include <span>\n#include <ranges>\nint main(){int a[] = {1}; std::span<int> s(a); if (std::ranges::size(s) == 1) std::cout << \"hello, world\" << std::endl;}",
		stdin:        cppStdin,
		version:      "#include <cstdio>\nstatic_assert(__cplusplus == 202002L);\nint main(){std::printf(\"%d.%d.%d\\n\", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);}",
		compileError: "int main() { undefined_name(); }"},
	{language: "cpp23", file: "main.cpp",
		hello:        "#include <print>\nint main(){std::println(\"hello, world\");}",
		stdin:        cppStdin,
		version:      "#include <cstdio>\nstatic_assert(__cplusplus > 202002L);\nint main(){std::printf(\"%d.%d.%d\\n\", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);}",
		compileError: "int main() { undefined_name(); }"},
	{language: "java", file: "Main.java",
		hello:        "public class Main { public static void main(String[] a) { System.out.println(\"hello, world\"); } }",
		stdin:        "import java.util.Scanner;\npublic class Main { public static void main(String[] a) { System.out.println(new Scanner(System.in).nextLine().toUpperCase()); } }",
		version:      "public class Main { public static void main(String[] a) { System.out.println(System.getProperty(\"java.version\")); } }",
		compileError: "public class Main { public static void main(String[] a) { int x = \"s\"; } }"},
	{language: "bash", file: "main.sh",
		hello:   `echo "hello, world"`,
		stdin:   `read -r line; echo "${line^^}"`,
		version: `echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"`},
	{language: "go", file: "main.go",
		hello:        "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello, world\") }",
		stdin:        "package main\nimport (\"bufio\"; \"fmt\"; \"os\"; \"strings\")\nfunc main() { s := bufio.NewScanner(os.Stdin); s.Scan(); fmt.Println(strings.ToUpper(s.Text())) }",
		version:      "package main\nimport (\"fmt\"; \"runtime\"; \"strings\")\nfunc main() { fmt.Println(strings.TrimPrefix(runtime.Version(), \"go\")) }",
		compileError: "package main\nfunc main() { undefinedName() }"},
	{language: "rust", file: "main.rs",
		hello:        `fn main() { println!("hello, world"); }`,
		stdin:        "use std::io::BufRead;\nfn main() { let l = std::io::stdin().lock().lines().next().unwrap().unwrap(); println!(\"{}\", l.to_uppercase()); }",
		version:      "fn main() { let o = std::process::Command::new(\"/usr/bin/rustc\").arg(\"--version\").output().unwrap(); let s = String::from_utf8(o.stdout).unwrap(); println!(\"{}\", s.split_whitespace().nth(1).unwrap()); }",
		compileError: `fn main() { let x: i32 = "s"; }`},
	{language: "ruby", file: "main.rb",
		hello:   `puts "hello, world"`,
		stdin:   `puts STDIN.gets.chomp.upcase`,
		version: `puts RUBY_VERSION`},
	{language: "php", file: "main.php",
		hello:   `<?php echo "hello, world\n";`,
		stdin:   `<?php echo strtoupper(trim(fgets(STDIN))), "\n";`,
		version: `<?php echo PHP_VERSION, "\n";`},
	{language: "perl", file: "main.pl",
		hello:   `print "hello, world\n";`,
		stdin:   `my $l = <STDIN>; chomp $l; print uc($l), "\n";`,
		version: `printf "%vd\n", $^V;`},
	{language: "lua", file: "main.lua",
		hello:   `print("hello, world")`,
		stdin:   `print(io.read("l"):upper())`,
		version: `print(io.popen("/usr/bin/lua5.4 -v"):read("a"):match("Lua (%d+%.%d+%.%d+)"))`},
	{language: "typescript", file: "main.ts",
		hello:        `const greeting: string = "hello, world"; console.log(greeting);`,
		stdin:        `const line: string = require("fs").readFileSync(0, "utf8").split("\n")[0]; console.log(line.toUpperCase());`,
		version:      `console.log(require("typescript").version);`,
		compileError: `const n: number = "not a number";`},
}

// TestLanguages runs every built-in language, each of its versions:
// hello world, stdin, the version it says it has (a full x.y.z, the one
// the image's binary says), and a compile error where it compiles.
func TestLanguages(t *testing.T) {
	rs, err := env.Client.Runtimes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, c := range languageCases {
		tested[c.language] = true
		var versions []string
		for _, r := range rs.Runtimes {
			if r.Language == c.language {
				versions = append(versions, r.Version)
			}
		}
		if len(versions) == 0 {
			t.Errorf("%s is not listed", c.language)
		}
		for _, v := range versions {
			// Two at a time (-parallel, GOMAXPROCS): the sandboxes overlap
			// as requests do.
			t.Run(c.language+"@"+v, func(t *testing.T) {
				t.Parallel()
				testLanguage(t, c, v)
			})
		}
	}
	builtin := map[string]bool{}
	for key, l := range config.DefaultLanguages() {
		builtin[config.LanguageName(key, l)] = true
	}
	for _, r := range rs.Runtimes {
		if builtin[r.Language] && !tested[r.Language] {
			t.Errorf("%s %s has no test case", r.Language, r.Version)
		}
	}
}

func testLanguage(t *testing.T, c languageCase, version string) {
	t.Run("hello", func(t *testing.T) {
		resp := runOK(t, &api.RunRequest{Language: c.language, Version: version, Files: files(c.file, c.hello)})
		expectStatus(t, resp, api.StatusOK)
		if resp.Run.Stdout != "hello, world\n" || resp.Run.Stderr != "" || resp.Version != version {
			t.Fatalf("version %s stdout %q stderr %q", resp.Version, resp.Run.Stdout, trim(resp.Run.Stderr))
		}
		if (c.compileError != "") != (resp.Compile != nil) {
			t.Fatalf("compile stage: %+v", resp.Compile)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		resp := runOK(t, &api.RunRequest{Language: c.language, Version: version, Files: files(c.file, c.stdin), Stdin: "quiet words\nsecond line\n"})
		expectStatus(t, resp, api.StatusOK)
		if resp.Run.Stdout != "QUIET WORDS\n" {
			t.Fatalf("stdout %q stderr %q", resp.Run.Stdout, trim(resp.Run.Stderr))
		}
	})
	t.Run("version", func(t *testing.T) {
		resp := runOK(t, &api.RunRequest{Language: c.language, Version: version, Files: files(c.file, c.version)})
		expectStatus(t, resp, api.StatusOK)
		got := strings.TrimSpace(resp.Run.Stdout)
		if _, err := semver.StrictNewVersion(resp.Version); err != nil || resp.Version != got {
			t.Fatalf("%s says version %q; its image runs %q (stderr %q)", c.language, resp.Version, got, trim(resp.Run.Stderr))
		}
	})
	if c.compileError == "" {
		return
	}
	t.Run("compile error", func(t *testing.T) {
		resp := runOK(t, &api.RunRequest{Language: c.language, Version: version, Files: files(c.file, c.compileError)})
		if resp.Status != api.StatusCompileError || resp.Compile == nil || resp.Run != nil {
			t.Fatalf("status %q compile %+v run %+v", resp.Status, resp.Compile, resp.Run)
		}
		if resp.Compile.ExitCode == 0 || resp.Compile.Stdout+resp.Compile.Stderr == "" {
			t.Fatalf("the compiler said nothing: %+v", resp.Compile)
		}
	})
}
